"""Benchmarks run as commands (`ddft bench ...`): each prints what it measured and how."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class Timing:
    name: str
    seconds: list[float]
    target_s: float | None = None
    detail: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def line(self) -> str:
        target = "" if self.target_s is None else (
            f"  target ≤ {self._fmt(self.target_s)}: "
            f"{'met' if self.median <= self.target_s else 'MISSED'}")
        runs = f" (median of {len(self.seconds)})" if len(self.seconds) > 1 else ""
        return f"{self.name}: {self._fmt(self.median)}{runs}{target}{self.detail}"

    @staticmethod
    def _fmt(seconds: float) -> str:
        return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


@dataclass
class BenchResult:
    timings: list[Timing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _repeat(fn: Callable[[], object], times: int) -> list[float]:
    fn()  # warm: the first query compiles SQL and fills SQLite's page cache
    out = []
    for _ in range(times):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def write_foodx_like(root: Path, rows: int, *, classes: int = 251) -> None:
    """A FoodX-251-format tree with `rows` training rows and empty image files."""
    annot = root / "annot"
    images = root / "train_set"
    annot.mkdir(parents=True)
    images.mkdir()
    names = [f"dish_number_{i}" for i in range(classes)]
    (annot / "class_list.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(names)))
    with open(annot / "train_info.csv", "w") as csv:
        for i in range(rows):
            name = f"train_{i:06d}.jpg"
            csv.write(f"{name},{i % classes}\n")
            # An empty file: the importer checks presence; decoding is `ddft data check`'s work.
            with open(images / name, "wb"):
                pass
    (annot / "val_info.csv").write_text("")


def bench_import(
    *, rows: int = 158_000, store_rows: int = 160_000, repeats: int = 20,
    progress: Callable[[str], None] | None = None,
) -> BenchResult:
    """Time a FoodX-251 import of `rows` rows into a fresh store, then a Samples page and a
    full-text search with `store_rows` samples in the store."""
    from db import queries
    from db.store import open_store, session_scope
    from engine.importers.base import apply_plan
    from engine.importers.foodx import read_foodx

    say = progress or (lambda message: None)
    result = BenchResult()
    with tempfile.TemporaryDirectory(prefix="ddft-bench-") as tmp:
        root = Path(tmp) / "foodx"
        say(f"writing {rows:,} FoodX-251 rows and empty image files (not timed)")
        write_foodx_like(root, rows)
        os.sync()
        db_engine = open_store(url=f"sqlite:///{tmp}/bench.db")

        say("importing (timed: reading, checking presence, planning, one transaction)")
        start = time.perf_counter()
        plan = read_foodx(root, split="train")
        read_s = time.perf_counter() - start
        summaries = apply_plan(db_engine, plan)
        total_s = time.perf_counter() - start
        imported = sum(s.imported for s in summaries)
        result.timings.append(Timing(
            f"import {imported:,} FoodX-251 rows", [total_s], 20.0,
            f"  (read and plan {read_s:.2f} s, write {total_s - read_s:.2f} s)"))

        extra = store_rows - imported
        if extra > 0:
            say(f"adding {extra:,} text samples to reach {store_rows:,} (not timed)")
            with session_scope(db_engine) as session:
                dataset = queries.get_or_create_dataset(session, name="bench-text",
                                                        modality="text")
                queries.add_samples(session, dataset_id=dataset.id, samples=(
                    {"external_id": f"t{i}", "modality": "text",
                     "prompt": f"How long should I roast vegetable number {i}?",
                     "answer": "About 25 minutes at 220 °C, turning once."}
                    for i in range(extra)))
        with session_scope(db_engine) as session:
            total = queries.count_samples(session)
            foodx = queries.get_dataset(session, name="foodx251-train")

        def page(**filters) -> Callable[[], object]:
            def load() -> object:
                # What the Samples screen does per page: one count and one page of 50 rows.
                with session_scope(db_engine) as session:
                    queries.count_samples(session, **filters)
                    return queries.list_samples(session, offset=50 * 100, limit=50, **filters)
            return load

        say(f"timing Samples pages and searches with {total:,} samples in the store")
        result.timings.append(Timing("Samples page (rows 5,001-5,050, no filter)",
                                     _repeat(page(), repeats), 0.050))
        result.timings.append(Timing("Samples page (dataset + modality filter)",
                                     _repeat(page(dataset_id=foodx.id, modality="image"),
                                             repeats), 0.050))
        result.timings.append(Timing("Samples page (excluded samples only)",
                                     _repeat(page(included=False), repeats), 0.050))
        result.timings.append(Timing("Samples page (failed checks only)",
                                     _repeat(page(check_status="failed"), repeats), 0.050))

        def search(term: str) -> Callable[[], object]:
            def run() -> object:
                with session_scope(db_engine) as session:
                    queries.count_samples(session, search=term)
                    return queries.list_samples(session, search=term, limit=50)
            return run

        for term in ("dish", "dish number 17", "roast vegetable 12345", "zzz-no-match"):
            result.timings.append(Timing(f"full-text search {term!r} (count + first page)",
                                         _repeat(search(term), repeats), 0.100))
        db_engine.dispose()
    result.notes.append(f"store: SQLite (WAL) in a temporary folder; {total:,} samples; "
                        f"{repeats} timed repeats after one warm-up, median shown")
    return result
