"""Training curves as terminal text: plotext charts, or one-line sparklines when plotext fails."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from workbench.data.jobs import loss_sparkline

Series = tuple[tuple[int, float], ...]
# plotext 6 draws on one module-level figure: two workers rendering at once would mix their plots.
_PLOT_LOCK = threading.Lock()
LOSS_HEIGHT = 14
LR_HEIGHT = 9


@dataclass(frozen=True)
class Curve:
    label: str
    points: Series


@dataclass(frozen=True)
class Chart:
    """A rendered chart: `text` holds ANSI colours when `kind` is "plotext"."""

    title: str
    kind: str  # plotext | sparkline | empty
    text: str


def _plotext_chart(title: str, curves: tuple[Curve, ...], width: int, height: int) -> str:
    # Deferred: plotext is only needed once a run is on screen, and `import workbench.app` stays light.
    import plotext

    with _PLOT_LOCK:
        # Off: plotext would clamp the chart to the size of the terminal it thinks it prints to.
        plotext.terminal.limit(False, False)
        figure = plotext.figure
        figure.clear.all()
        figure.plot_size(width, height)
        figure.theme("dark")
        figure.canvas("default")  # the terminal's own background, not plotext's black
        figure.title(title)
        for curve in curves:
            if not curve.points:
                continue
            signal = figure.signal([s for s, _ in curve.points], [v for _, v in curve.points])
            signal.label(curve.label)
            signal.lines(True)
            figure.draw(signal)
        text = str(figure.build())
        figure.clear.all()
    return text


def _sparkline_chart(title: str, curves: tuple[Curve, ...], width: int) -> str:
    lines = [title]
    for curve in curves:
        if not curve.points:
            continue
        spark = loss_sparkline(list(curve.points), width - 2) or "·"
        first, last = curve.points[0], curve.points[-1]
        lines.append(f"  {curve.label}: {spark}")
        lines.append(f"    {first[1]:.4g} @ {first[0]} → {last[1]:.4g} @ {last[0]}")
    return "\n".join(lines)


@lru_cache(maxsize=32)
def render_chart(title: str, curves: tuple[Curve, ...], width: int, height: int) -> Chart:
    """One chart of `curves`, at most `width` × `height` cells. Cached: a run that logged
    nothing new since the last poll is not drawn again."""
    if not any(len(curve.points) for curve in curves):
        return Chart(title, "empty", "")
    if sum(len(curve.points) for curve in curves) >= 2:
        try:
            return Chart(title, "plotext", _plotext_chart(title, curves, width, height))
        except Exception:  # noqa: BLE001, S110 — an old or broken plotext must not cost the curves
            pass
    return Chart(title, "sparkline", _sparkline_chart(title, curves, width))


def render_run_charts(*, label: str, loss: Series, lr: Series, projector_lr: Series,
                      overlay: Curve | None, width: int) -> tuple[Chart, Chart]:
    """The loss chart (with a second run's loss over it when given) and the learning-rate chart."""
    loss_curves = (Curve(label, loss),) + ((overlay,) if overlay is not None else ())
    lr_curves = (Curve("lr", lr),) + ((Curve("projector lr", projector_lr),) if projector_lr else ())
    width = max(30, width)
    return (render_chart("loss", loss_curves, width, LOSS_HEIGHT),
            render_chart("learning rate", lr_curves, width, LR_HEIGHT))
