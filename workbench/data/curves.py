"""Training curves as terminal text: plotext charts with the legend below the plot, whole-step
ticks, an optional log scale and a marker per curve; one-line sparklines when plotext fails."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

from workbench.data.jobs import loss_sparkline

Series = tuple[tuple[int, float], ...]
# plotext 6 draws on one module-level figure: two workers rendering at once would mix their plots.
_PLOT_LOCK = threading.Lock()
LOSS_HEIGHT = 14
LR_HEIGHT = 9
MIN_HEIGHT = 7
# How each curve is told apart without colour: the marker plotext draws it with, and the glyph
# the legend shows for it ("hd" is plotext's half-block line, drawn as ▄▀).
GLYPHS = {"hd": "▄"}
# 256-colour indices, the same in the chart and in its legend.
RUN_COLOUR, VAL_COLOUR, OVERLAY_COLOUR, OVERLAY_VAL_COLOUR = 12, 11, 13, 14


@dataclass(frozen=True)
class Curve:
    label: str
    points: Series
    marker: str = "hd"  # plotext marker: "hd" (a half-block line) or one character
    colour: int = RUN_COLOUR
    side: str = "left"  # the y axis it is read on: left or right
    lines: bool = True  # joined by lines; False: its markers alone

    @property
    def glyph(self) -> str:
        return GLYPHS.get(self.marker, self.marker)


@dataclass(frozen=True)
class Chart:
    """A rendered chart: `text` holds ANSI colours when `kind` is "plotext"; `legend` names
    each curve drawn as (glyph, label, colour), shown beside the plot rather than over it;
    `note` says how it is drawn when that is not the plain default (a log scale, two curves
    that are one)."""

    title: str
    kind: str  # plotext | sparkline | empty
    text: str
    legend: tuple[tuple[str, str, int], ...] = ()
    note: str = ""


def step_ticks(low: int, high: int, width: int) -> list[int]:
    """Whole-number steps to label an x axis from `low` to `high` that is `width` cells wide:
    multiples of 1, 2 or 5 × 10^k, about one every ten cells, with both ends shown."""
    if high <= low:
        return [low]
    wanted = max(2, width // 10)
    span = high - low
    spacing = 1
    for power in range(0, 12):
        for base in (1, 2, 5):
            spacing = base * 10 ** power
            if span / spacing <= wanted:
                break
        else:
            continue
        break
    ticks = [low] + [t for t in range(math.ceil(low / spacing) * spacing, high, spacing)
                     if t > low] + [high]
    # Keep labels apart: a tick closer than half a spacing to the last one makes room for it.
    if len(ticks) > 2 and ticks[-1] - ticks[-2] < spacing / 2:
        ticks.pop(-2)
    if len(ticks) > 2 and ticks[1] - ticks[0] < spacing / 2:
        ticks.pop(1)
    return ticks


def _plotext_chart(title: str, curves: tuple[Curve, ...], width: int, height: int,
                   log_y: bool) -> str:
    # Deferred: plotext is only needed once a run is on screen, and `import workbench.app` stays light.
    import plotext

    drawn = [curve for curve in curves if curve.points]
    steps = [s for curve in drawn for s, _ in curve.points]
    with _PLOT_LOCK:
        # Off: plotext would clamp the chart to the size of the terminal it thinks it prints to.
        plotext.terminal.limit(False, False)
        figure = plotext.figure
        figure.clear.all()
        figure.plot_size(width, height)
        figure.theme("dark")
        figure.canvas("default")  # the terminal's own background, not plotext's black
        figure.title(title)
        # The legend goes below the plot (Chart.legend): inside it covers the start of the
        # curves, where the loss falls and the warm-up is.
        figure.legend(active=False)
        for curve in drawn:
            signal = figure.signal([s for s, _ in curve.points], [v for _, v in curve.points],
                                   marker=plotext.marker(curve.marker, pixel=curve.colour),
                                   yside=curve.side)
            signal.lines(curve.lines)
            figure.draw(signal)
        ticks = step_ticks(min(steps), max(steps), width - 8)
        figure.ruler("x").ticks(ticks, [str(t) for t in ticks])
        if log_y:
            figure.ruler("y", side=[0, 1]).scale("log")
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
def render_chart(title: str, curves: tuple[Curve, ...], width: int, height: int, *,
                 log_y: bool = False, note: str = "") -> Chart:
    """One chart of `curves`, at most `width` × `height` cells, plus its legend. With `log_y`
    the y axis is logarithmic, and points at or below 0 are left out (the note says so).
    Cached: a run that logged nothing new since the last poll is not drawn again."""
    if not any(len(curve.points) for curve in curves):
        return Chart(title, "empty", "")
    legend = tuple((c.glyph, c.label, c.colour) for c in curves if c.points)
    notes = [note] if note else []
    if log_y:
        notes.append("log scale")
        dropped = sum(1 for c in curves for _, v in c.points if not v > 0)
        if dropped:
            curves = tuple(Curve(c.label, tuple((s, v) for s, v in c.points if v > 0), c.marker,
                                 c.colour, c.side, c.lines) for c in curves)
            notes.append(f"{dropped} points at or below 0 not drawn")
        if not any(len(curve.points) for curve in curves):
            return Chart(title, "empty", "", legend, " · ".join(notes))
    if sum(len(curve.points) for curve in curves) >= 2:
        try:
            return Chart(title, "plotext", _plotext_chart(title, curves, width, height, log_y),
                         legend, " · ".join(notes))
        except Exception:  # noqa: BLE001, S110 — an old or broken plotext must not cost the curves
            pass
    return Chart(title, "sparkline", _sparkline_chart(title, curves, width), legend,
                 " · ".join(notes))


def _same(a: Series, b: Series) -> bool:
    return len(a) == len(b) and all(
        s == t and math.isclose(x, y, rel_tol=1e-9, abs_tol=0.0) for (s, x), (t, y) in zip(a, b))


def render_run_charts(*, label: str, loss: Series, lr: Series, projector_lr: Series,
                      overlay: Curve | None, width: int, val_loss: Series = (),
                      overlay_val: Curve | None = None, log_loss: bool = False,
                      loss_height: int = LOSS_HEIGHT, lr_height: int = LR_HEIGHT
                      ) -> tuple[Chart, Chart]:
    """The loss chart (training and validation loss, and a second run's over them when given;
    `log_loss` draws it on a log scale) and the learning-rate chart: the LoRA rate as a line
    on the left axis, the projector's as spaced dots read on its own right axis (it follows the
    same schedule, often at a tenth: on one axis it would be a flat line, on its own axis a
    line drawn over the other); one curve when the two rates are the same."""
    loss_curves = (Curve(label, loss),)
    if val_loss:
        loss_curves += (Curve(f"{label} validation", val_loss, "•", VAL_COLOUR),)
    if overlay is not None:
        loss_curves += (Curve(overlay.label, overlay.points, "x", OVERLAY_COLOUR),)
    if overlay_val is not None and overlay_val.points:
        loss_curves += (Curve(overlay_val.label, overlay_val.points, "+", OVERLAY_VAL_COLOUR),)
    if projector_lr and _same(lr, projector_lr):
        lr_curves: tuple[Curve, ...] = (Curve("lr = projector lr", lr),)
    else:
        lr_curves = (Curve("lr (left axis)" if projector_lr else "lr", lr),)
        if projector_lr:
            every = max(1, len(projector_lr) // max(1, width // 4))
            lr_curves += (Curve("projector lr (right axis)", projector_lr[::every], "•",
                                VAL_COLOUR, "right", lines=False),)
    width = max(30, width)
    return (render_chart("loss", loss_curves, width, max(MIN_HEIGHT, loss_height),
                         log_y=log_loss),
            render_chart("learning rate", lr_curves, width, max(MIN_HEIGHT, lr_height)))
