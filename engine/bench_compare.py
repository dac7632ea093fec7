"""`ddft bench compare`: the Compare screen's loaders on a store of synthetic rows (an eval set of
408 videos × 4 variants, generated, judged and grounded), timed and their statements counted."""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from db.errors import UserError

PAGE_TARGET_S = 0.100  # issue 11: a page of 408 videos × 4 variants in ≤ 100 ms on 2 cores
EVAL_SET = "bench-eval"
JUDGES = (("offline", "offline", "offline-v2"), ("gpt-3.5-turbo", "paper", "paper-v1"))


class BenchCompareError(UserError, ValueError):
    """A bad benchmark setting (one line naming the option)."""


@dataclass
class LoadTiming:
    """Repeated timings of one loader, with the statements one load runs."""

    name: str
    seconds: list[float]
    statements: int
    target_s: float | None = None

    def line(self) -> str:
        median, worst = statistics.median(self.seconds), max(self.seconds)
        target = "" if self.target_s is None else (
            f" · target ≤ {self.target_s * 1000:.0f} ms: "
            f"{'met' if median <= self.target_s else 'MISSED'}")
        return (f"{self.name}: median {median * 1000:.1f} ms, max {worst * 1000:.1f} ms "
                f"over {len(self.seconds)} loads · {self.statements} SQL statements a load{target}")


@dataclass
class BenchCompareResult:
    samples: int
    variants: int
    build_s: float
    timings: list[LoadTiming] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"store: {self.samples} eval videos × {self.variants} variants, two judgments "
                f"and a grounding per latest generation (built in {self.build_s:.1f} s)",
                *(timing.line() for timing in self.timings)]


def _recipe_texts(sample: int, variants: int) -> tuple[str, list[str]]:
    """A kitchen dish's recipe as the reference, and for each variant a version that drops
    one ingredient and adds another, so every side has matched, missing and extra lines."""
    from engine.evaluation.recipe import format_recipe
    from engine.kitchen.recipes import DISHES

    dish = DISHES[sample % len(DISHES)]
    reference = format_recipe(dish.name, dish.ingredients, dish.steps)
    generations = []
    for v in range(variants):
        kept = [line for i, line in enumerate(dish.ingredients) if i != v % len(dish.ingredients)]
        generations.append(format_recipe(dish.name, kept + [f"{v + 1} cups water"],
                                         dish.steps[: len(dish.steps) - v % 2]))
    return reference, generations


def fill_compare_store(db_engine: Any, *, samples: int, variants: int) -> None:
    """Add an eval set of `samples` videos and `variants` variants to the store at `db_engine`: for
    each video and variant an older generation and the latest one, the latest judged by two
    judges (that disagree on every fifth sample) and grounded. Only db's query functions."""
    from db import queries
    from db.store import session_scope

    times = [round(1.1 * f, 1) for f in range(8)]
    segments = [{"segment": [0.0, 4.0], "id": 0, "sentence": "prepare"},
                {"segment": [4.0, 9.0], "id": 1, "sentence": "cook"}]
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name=EVAL_SET, modality="video",
                                                purpose="eval", source="synthetic")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"video-{i:04d}", "modality": "video", "split": "validation",
             "media_path": f"/bench/videos/video-{i:04d}.mp4", "prompt": "recipe?",
             "answer": _recipe_texts(i, 0)[0], "group": str(i % 12), "duration_s": 9.0,
             "meta": {"frame_times": times, "segments": segments}}
            for i in range(samples)])
        rows = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        made = [queries.create_variant(session, name=f"bench-variant-{v}", base_model="-")
                for v in range(variants)]
        for index, sample in enumerate(rows):
            _, texts = _recipe_texts(index, variants)
            for v, (variant, text) in enumerate(zip(made, texts)):
                for key in ("older", "latest"):
                    generation = queries.add_generation(
                        session, variant_id=variant.id, sample_id=sample.id, prompt="recipe?",
                        text=text, params_key=key, decoding={"max_new_tokens": 256},
                        frame_indices=list(range(0, 24, 3)), frame_times=times)
                for judge, protocol, version in JUDGES:
                    score = 1.0 + (index + v) % 5
                    if judge != "offline" and index % 5 == 0:
                        score = 6.0 - score  # the judges disagree here
                    queries.add_judgment(session, generation_id=generation.id, judge=judge,
                                         protocol=protocol, prompt_version=version, score=score,
                                         verdict="yes" if score >= 3.5 else "no", raw="")
                queries.add_grounding(
                    session, generation_id=generation.id, params_key="late-all-1",
                    params={"layers": list(range(16, 32)), "heads": list(range(32)), "top_k": 1},
                    steps=[{"index": s, "text": "step", "frames": [s], "frame_indices": [3 * s],
                            "times": [times[s]], "weights": [0.125] * 8} for s in range(2)])


@contextmanager
def counting_statements(db_engine: Any) -> Iterator[list[str]]:
    """The SQL statements run on `db_engine` inside the block, in order."""
    # An event hook, not a query: the statements are db's, this only counts them.
    from sqlalchemy import event

    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(db_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(db_engine, "before_cursor_execute", record)


def _time(name: str, load: Callable[[], object], db_engine: Any, repeats: int,
          target_s: float | None = None) -> LoadTiming:
    load()  # warm: the first load compiles the SQL and fills SQLite's page cache
    with counting_statements(db_engine) as statements:
        load()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        load()
        seconds.append(time.perf_counter() - start)
    return LoadTiming(name, seconds, len(statements), target_s)


def bench_compare(*, load_choices: Callable[..., Any], load_view: Callable[..., Any],
                  samples: int = 408, variants: int = 4, repeats: int = 20,
                  progress: Callable[[str], None] | None = None) -> BenchCompareResult:
    """Build a store in a temporary folder (`fill_compare_store`), then time the Compare
    screen's own loaders, `load_choices` and `load_view` (workbench.data.compare's, handed in by
    the CLI, the composition root: the compute room never imports the workbench): one page (the
    eval set's sample list with its filter flags over every variant) and one sample's view (the
    reference beside every variant's generation, with ingredient marks, judgments and
    grounding). Raises BenchCompareError for a setting below 1."""
    from db.store import open_store

    for option, value in (("--samples", samples), ("--variants", variants),
                          ("--repeats", repeats)):
        if value < 1:
            raise BenchCompareError(f"{option} must be at least 1, got {value}")
    say = progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="ddft-bench-compare-") as folder:
        db_engine = open_store(url=f"sqlite:///{Path(folder) / 'ddft.db'}")
        try:
            say(f"building a store of {samples} videos × {variants} variants")
            start = time.perf_counter()
            fill_compare_store(db_engine, samples=samples, variants=variants)
            result = BenchCompareResult(samples, variants, time.perf_counter() - start)
            choices = load_choices(db_engine)
            if len(choices.samples) != samples or len(choices.variants) != variants:
                raise RuntimeError(f"the page holds {len(choices.samples)} samples and "
                                   f"{len(choices.variants)} variants; expected {samples} and "
                                   f"{variants}")
            say(f"timing {repeats} loads of each")
            result.timings.append(_time(
                f"page ({samples} videos × {variants} variants)",
                lambda: load_choices(db_engine, dataset_id=choices.dataset_id), db_engine, repeats,
                PAGE_TARGET_S))
            shown = itertools.count()  # each load a different sample
            result.timings.append(_time(
                f"one sample's view ({variants} variants)",
                lambda: load_view(db_engine, variants=choices.variants,
                                  sample=choices.samples[next(shown) % samples]),
                db_engine, repeats))
        finally:
            db_engine.dispose()
    return result
