"""`ddft bench raters`: many raters claiming and saving ratings in one store, as separate OS
processes, while another process writes a training job's progress and metrics; save times and
every error that reached a rater or the job.

Each rater process runs db.campaigns' own functions (next_item, save_rating, skip_item,
undo_last) exactly as the rating screen does, one short session each, with no think time, so
the store sees the densest load the raters can make. Every fifth item is skipped and every
seventh rating taken back and given again. The job process writes through engine.jobs'
JobContext (progress with its heartbeat, then the step's metrics) every `step_s` seconds.
Run a rater or the job writer alone with `python -m engine.bench_raters rater|job ...`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db.errors import UserError

EVAL_SET = "bench-eval"
VARIANTS = ("bench-base", "bench-tuned")
METRICS = ("loss", "lr", "projector_lr", "grad_norm", "samples_per_s", "tokens_per_s",
           "padding_fraction")
START_TIMEOUT_S = 120.0


class BenchRatersError(UserError, ValueError):
    """A bad benchmark setting, or a process of the benchmark that did not finish."""


@dataclass
class RaterReport:
    """What one rater process did: the ratings it was told are stored (item id → choice), the
    items it skipped, each save's and claim's wall time, and every error it was shown."""

    name: str
    saved: dict[int, str]
    skipped: list[int]
    save_s: list[float]
    claim_s: list[float]
    errors: list[str]


@dataclass
class RaterBench:
    """The benchmark's outcome, with the store it ran on."""

    raters: int
    samples: int
    raters_per_item: int
    url: str
    campaign_id: int
    seconds: float
    reports: list[RaterReport]
    job_writes: int
    job_errors: list[str]
    stored: list[tuple[str, int, str]] = field(default_factory=list)  # (rater, item, choice)

    @property
    def save_times(self) -> list[float]:
        return [s for r in self.reports for s in r.save_s]

    @property
    def errors(self) -> list[str]:
        return [f"{r.name}: {e}" for r in self.reports for e in r.errors] + [
            f"job: {e}" for e in self.job_errors]

    def lost_or_duplicated(self) -> list[str]:
        """Ratings a rater was told are stored but are not (or hold another choice), ratings
        stored that no rater was told about, and any (rater, item) stored twice."""
        said = {(r.name, item, choice) for r in self.reports for item, choice in r.saved.items()}
        stored = set(self.stored)
        problems = [f"lost: {x}" for x in sorted(said - stored)]
        problems += [f"not told: {x}" for x in sorted(stored - said)]
        pairs = [(name, item) for name, item, _ in self.stored]
        problems += [f"twice: {p}" for p in sorted({p for p in pairs if pairs.count(p) > 1})]
        return problems

    def lines(self) -> list[str]:
        times = sorted(self.save_times)
        claims = sorted(c for r in self.reports for c in r.claim_s)

        def pct(values: list[float], q: float) -> float:
            return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

        errors = self.errors
        lines = [
            f"{self.raters} rater processes, {self.samples} pairwise items × "
            f"{self.raters_per_item} raters each, no think time, one job process writing "
            f"progress + {len(METRICS)} metrics per step ({self.job_writes} steps written)",
            f"store: {self.url}",
            f"saves: {len(times)} in {self.seconds:.1f} s = {len(times) / self.seconds:.1f} "
            f"saves/s",
            f"save time: p50 {statistics.median(times) * 1000:.0f} ms · p95 "
            f"{pct(times, 0.95) * 1000:.0f} ms · worst {times[-1] * 1000:.0f} ms"
            if times else "save time: no saves",
            f"claim time: p50 {statistics.median(claims) * 1000:.0f} ms · p95 "
            f"{pct(claims, 0.95) * 1000:.0f} ms · worst {claims[-1] * 1000:.0f} ms"
            if claims else "claim time: no claims",
            f"errors: {len(errors)}",
        ]
        lines += [f"  {e}" for e in errors[:40]]
        if len(errors) > 40:
            lines.append(f"  … {len(errors) - 40} more")
        problems = self.lost_or_duplicated()
        lines.append(f"ratings lost or duplicated: {len(problems)}")
        lines += [f"  {p}" for p in problems[:20]]
        return lines


# ---------------------------------------------------------------- the store


def fill_rating_store(db_engine: Any, *, samples: int, raters_per_item: int) -> int:
    """An eval set of `samples` videos with a recipe from each of two variants and a pairwise
    campaign over them (made by engine.evaluation.rating.create_campaign); returns its id."""
    from db import queries
    from db.campaigns import get_campaign
    from db.store import session_scope
    from engine.evaluation.rating import create_campaign
    from engine.evaluation.recipe import format_recipe

    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name=EVAL_SET, modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"video-{i:04d}", "modality": "video", "split": "test",
             "prompt": "Write the recipe for the dish in this video.",
             "answer": format_recipe(f"Dish {i}", [f"{i % 7 + 1} cups flour", "2 eggs"],
                                     ["Whisk everything.", f"Bake for {10 + i % 30} minutes."])}
            for i in range(samples)])
        rows = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        for v, name in enumerate(VARIANTS):
            variant = queries.create_variant(session, name=name, base_model=f"/models/{name}")
            for i, sample in enumerate(rows):
                queries.add_generation(
                    session, variant_id=variant.id, sample_id=sample.id, prompt="p",
                    text=format_recipe(f"Dish {i}", [f"{i % 5 + v + 1} cups flour"],
                                       ["Whisk everything.", f"Rest for {v + 2} minutes."]),
                    params_key="greedy")
    create_campaign(db_engine, name="bench", eval_set=EVAL_SET, variants=list(VARIANTS),
                    mode="pairwise", raters_per_item=raters_per_item, seed=13)
    with session_scope(db_engine) as session:
        return get_campaign(session, name="bench").id  # type: ignore[union-attr,return-value]


def stored_ratings(db_engine: Any, campaign_id: int) -> list[tuple[str, int, str]]:
    """Every stored rating of the campaign as (rater name, item id, choice)."""
    from db import campaigns
    from db.store import session_scope

    with session_scope(db_engine) as session:
        names = {r.id: r.name for r in campaigns.list_raters(session)}
        return sorted((names[r.rater_id], r.item_id, r.choice or "")
                      for r in campaigns.campaign_ratings(session, campaign_id=campaign_id))


# ---------------------------------------------------------------- the processes


def _wait_for(path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no start signal at {path}")
        time.sleep(0.01)


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:200]}"


def _shorten_sqlite_wait(busy_timeout_ms: int | None) -> None:
    # SQLite's own wait for a lock, shortened so that a small test storm shows what a long
    # one does (every wait ending in "database is locked"); the write budget is unchanged.
    if busy_timeout_ms is not None:
        import db.store

        db.store.BUSY_TIMEOUT_MS = busy_timeout_ms


def run_rater(url: str, campaign_id: int, name: str, go: Path,
              busy_timeout_ms: int | None = None) -> RaterReport:
    """One rater: claim, rate (or skip, or undo and rate again) until nothing is left. An action
    that fails is recorded and tried again, as a rater would press the key again; the answer
    stays theirs until a save returns."""
    from db import campaigns as c
    from db.store import open_store, session_scope

    _shorten_sqlite_wait(busy_timeout_ms)
    db_engine = open_store(url=url, create=False)
    report = RaterReport(name, {}, [], [], [], [])

    def attempt(action: Callable[[Any], Any], timing: list[float] | None = None) -> Any:
        while True:
            started = time.perf_counter()
            try:
                with session_scope(db_engine) as session:
                    result = action(session)
            except c.CampaignError:
                raise
            except Exception as exc:  # noqa: BLE001 — what a rater would have been shown
                report.errors.append(_describe(exc))
                if len(report.errors) > 200:
                    raise
                continue
            if timing is not None:
                timing.append(time.perf_counter() - started)
            return result

    _wait_for(go)
    rater_id = attempt(lambda s: c.get_or_create_rater(s, name=name).id)
    shown = 0
    while True:
        item = attempt(lambda s: c.next_item(s, campaign_id=campaign_id, rater_id=rater_id),
                       report.claim_s)
        if item is None:
            break
        shown += 1
        if shown % 5 == 0:
            attempt(lambda s: c.skip_item(s, assignment_id=item.assignment_id))
            report.skipped.append(item.item_id)
            continue
        choice = ("left", "right", "tie", "both-bad")[(item.item_id + len(name)) % 4]
        attempt(lambda s: c.save_rating(s, assignment_id=item.assignment_id, choice=choice,
                                        seconds=0.1), report.save_s)
        report.saved[item.item_id] = choice
        if shown % 7 == 0:
            undone = attempt(lambda s: c.undo_last(s, campaign_id=campaign_id,
                                                   rater_id=rater_id))
            if undone != item.item_id:
                report.errors.append(f"undo took back item {undone}, not {item.item_id}")
                continue
            del report.saved[item.item_id]
            again = attempt(lambda s: c.next_item(s, campaign_id=campaign_id,
                                                  rater_id=rater_id), report.claim_s)
            attempt(lambda s: c.save_rating(s, assignment_id=again.assignment_id, choice="tie",
                                            seconds=0.2), report.save_s)
            report.saved[again.item_id] = "tie"
    return report


def run_job_writer(url: str, job_id: int, go: Path, stop: Path, step_s: float,
                   workspace: Path, busy_timeout_ms: int | None = None) -> tuple[int, list[str]]:
    """A training job's writes through engine.jobs' JobContext until `stop` exists: each step
    its progress (with the heartbeat) and its metrics. Returns (steps, errors)."""
    from db import queries
    from db.store import open_store, session_scope
    from engine.jobs.runner import JobContext

    _shorten_sqlite_wait(busy_timeout_ms)
    db_engine = open_store(url=url, create=False)
    with session_scope(db_engine) as session:
        job = queries.get_job(session, job_id=job_id)
    context = JobContext(db_engine, job, workspace)
    errors: list[str] = []
    _wait_for(go)
    step = 0
    while not stop.exists():
        step += 1
        for write in (lambda: context.progress(step, 1_000_000, f"step {step}"),
                      lambda: context.metrics(step, {k: 1.0 / step for k in METRICS})):
            try:
                write()
            except Exception as exc:  # noqa: BLE001 — what would have killed the job
                errors.append(_describe(exc))
        time.sleep(step_s)
    return step, errors


def _start(args: list[str], out: Path, busy_timeout_ms: int | None) -> subprocess.Popen:
    wait = [] if busy_timeout_ms is None else [f"--busy-timeout-ms={busy_timeout_ms}"]
    return subprocess.Popen([sys.executable, "-m", "engine.bench_raters", *wait, *args,
                             str(out)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def bench_raters(
    *, raters: int = 16, samples: int = 300, raters_per_item: int = 3, step_s: float = 0.05,
    job: bool = True, folder: Path | None = None, timeout_s: float = 1800.0,
    busy_timeout_ms: int | None = None, progress: Callable[[str], None] | None = None,
) -> RaterBench:
    """Fill a fresh SQLite store in `folder` (a temporary one when None), start `raters` rater
    processes and, with `job`, one job writer, let them go at once, and wait until every rater
    has nothing left. `busy_timeout_ms` shortens SQLite's own lock wait in those processes (a
    test's small storm then fails where a long one would). Raises BenchRatersError for bad settings or a process that failed or
    outlived `timeout_s`."""
    from db.store import open_store

    if raters < 1 or samples < 1 or raters_per_item < 1 or step_s <= 0:
        raise BenchRatersError("--raters, --samples and --raters-per-item must be at least 1, "
                               "--step-ms above 0")
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="ddft-bench-raters-") as tmp:
        root = Path(folder or tmp)
        root.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{root / 'ddft.db'}"
        db_engine = open_store(url=url)
        campaign_id = fill_rating_store(db_engine, samples=samples,
                                        raters_per_item=raters_per_item)
        job_id = 0
        if job:
            from engine.jobs import create_job

            job_id = create_job(db_engine, kind="train", params={}, title="bench writer")
        go, stop = root / "go", root / "stop"
        names = [f"rater-{i:02d}" for i in range(raters)]
        say(f"starting {raters} raters" + (" and a job writer" if job else ""))
        processes = {name: _start(["rater", url, str(campaign_id), name, str(go)],
                                  root / f"{name}.json", busy_timeout_ms) for name in names}
        writer = (_start(["job", url, str(job_id), str(go), str(stop), str(step_s), str(root)],
                         root / "job.json", busy_timeout_ms) if job else None)
        try:
            # Interpreters start slowly on a busy machine; the clock starts with the signal.
            time.sleep(min(2.0 + 0.25 * raters, 10.0))
            go.write_text("go")
            started = time.perf_counter()
            deadline = time.monotonic() + timeout_s
            failed = []
            for name, process in processes.items():
                try:
                    _, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise BenchRatersError(f"{name} did not finish within {timeout_s:.0f} s")
                if process.returncode != 0:
                    failed.append(f"{name} exited {process.returncode}: "
                                  f"{(err.strip().splitlines() or [''])[-1]}")
            seconds = time.perf_counter() - started
            stop.write_text("stop")
            job_writes, job_errors = 0, []
            if writer is not None:
                _, err = writer.communicate(timeout=60)
                if writer.returncode != 0:
                    failed.append(f"the job writer exited {writer.returncode}: "
                                  f"{(err.strip().splitlines() or [''])[-1]}")
                else:
                    job_writes, job_errors = json.loads((root / "job.json").read_text())
            if failed:
                raise BenchRatersError("; ".join(failed))
        finally:
            stop.write_text("stop")
            for process in [*processes.values(), *([writer] if writer else [])]:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        reports = []
        for name in names:
            raw = json.loads((root / f"{name}.json").read_text())
            raw["saved"] = {int(k): v for k, v in raw["saved"].items()}
            reports.append(RaterReport(**raw))
        result = RaterBench(raters=raters, samples=samples, raters_per_item=raters_per_item,
                            url=url if folder else "SQLite in a temporary folder",
                            campaign_id=campaign_id, seconds=seconds, reports=reports,
                            job_writes=job_writes, job_errors=job_errors,
                            stored=stored_ratings(db_engine, campaign_id))
        db_engine.dispose()
        return result


def main(argv: list[str] | None = None) -> None:
    """`python -m engine.bench_raters [--busy-timeout-ms=N] rater URL CAMPAIGN NAME GO OUT` or
    `... job URL JOB GO STOP STEP_S WORKSPACE OUT`: one process of the benchmark."""
    args = list(sys.argv[1:] if argv is None else argv)
    wait = None
    if args and args[0].startswith("--busy-timeout-ms="):
        wait = int(args.pop(0).split("=", 1)[1])
    role, out = args[0], Path(args[-1])
    if role == "rater":
        url, campaign_id, name, go = args[1], int(args[2]), args[3], Path(args[4])
        report = run_rater(url, campaign_id, name, go, wait)
        payload: Any = report.__dict__
    elif role == "job":
        url, job_id, go, stop = args[1], int(args[2]), Path(args[3]), Path(args[4])
        payload = run_job_writer(url, job_id, go, stop, float(args[5]), Path(args[6]), wait)
    else:
        raise SystemExit(f"unknown role {role!r}: rater or job")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(out)


if __name__ == "__main__":
    main()
