"""Modality ablation grids: the paper's experiment as one object in the store.

A grid trains one LoRA run per cell — a subset of the training sets' modalities (by default
each modality alone and all of them together), crossed with values of preset fields — and
follows each run with generation on one eval set and the chosen judges; the untuned base model
generates once. Every piece is an ordinary job of engine.jobs.requests.KINDS in the host's
device queue, waiting for the job before it (`after`), so training runs never share the device
beyond its slots. Asking for a grid again (`advance_grid`) continues it: a finished job is never
run again, a stopped one is resumed (training from its last checkpoint), a missing one queued.

Import-light: the workbench reads grid status through it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db import queries
from db.models import MODALITIES
from db.names import check_name
from db.store import session_scope
from engine.jobs.requests import (
    GenerateRequest,
    JobError,
    JudgeRequest,
    TrainRequest,
    expecting_variants,
    find_named,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from db.models import Grid, GridCell, Job

# How a modality reads in a cell's name and in the report.
MODALITY_WORDS = {"image": "image", "video": "video", "text": "questions"}
GENERATION_DEFAULTS = {"batch_size": 4, "max_new_tokens": 256}
# Statuses a grid job may be resumed from.
STOPPED = ("interrupted", "failed", "cancelled")


class GridError(JobError):
    """A grid cannot be made or continued as asked; the message lists every problem."""


def parse_subset(text: str) -> tuple[str, ...]:
    """`image+video` (or `image,video`) → ("image", "video"), in db.models.MODALITIES order;
    `questions` is the text modality. Raises GridError naming the argument for an unknown
    modality or an empty subset."""
    words = {"questions": "text", "question": "text", "text": "text", "image": "image",
             "images": "image", "video": "video", "videos": "video"}
    parts = [p.strip().lower() for p in text.replace(",", "+").split("+") if p.strip()]
    unknown = [p for p in parts if p not in words]
    if unknown or not parts:
        raise GridError(f"--modalities {text}: expected modalities joined by +, from image, "
                        f"video, questions; found {', '.join(unknown) or 'none'}")
    chosen = {words[p] for p in parts}
    return tuple(m for m in MODALITIES if m in chosen)


def parse_axis(text: str) -> tuple[str, list[str]]:
    """`lora_r=64,128` → ("lora_r", ["64", "128"]). Raises GridError naming the argument when
    there is no field or no value."""
    key, sep, values = text.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not key.strip() or not items:
        raise GridError(f"--grid {text}: expected FIELD=VALUE,VALUE (a preset field and its "
                        "values)")
    return key.strip(), items


def default_subsets(modalities: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Each modality alone, then all of them together (when there are several)."""
    subsets = [(m,) for m in modalities]
    if len(modalities) > 1:
        subsets.append(tuple(modalities))
    return subsets


def cell_variant(grid: str, modalities: tuple[str, ...], settings: dict[str, str]) -> str:
    """The model variant a cell makes: `GRID-image+video`, then `-FIELD=VALUE` per setting."""
    name = f"{grid}-" + "+".join(MODALITY_WORDS[m] for m in modalities)
    return name + "".join(f"-{key}={value}" for key, value in settings.items())


@dataclass
class GridRequest:
    """What a grid is: its name, the base model, the training sets (their modality is the
    store's), the eval set, the cells' modality subsets (None: `default_subsets`), values of
    preset fields to cross them with, shared overrides, judges and generation settings."""

    name: str
    base: str
    datasets: list[str]
    eval_set: str
    subsets: list[tuple[str, ...]] | None = None
    axes: dict[str, list[str]] = field(default_factory=dict)
    preset: str = ""
    overrides: dict[str, str] = field(default_factory=dict)
    judges: list[dict[str, Any]] = field(default_factory=lambda: [{"judge": "offline"}])
    gpus: int = 1
    best_checkpoint: bool = False
    generation: dict[str, Any] = field(default_factory=lambda: dict(GENERATION_DEFAULTS))


@dataclass(frozen=True)
class CellStatus:
    """One row of a grid's status: its variant, modalities and settings, and the status of the
    jobs that make it (None: not asked for yet)."""

    position: int
    variant: str
    is_base: bool
    modalities: tuple[str, ...]
    settings: dict[str, str]
    train: str | None
    generate: str | None
    judges: tuple[str, ...]
    job_ids: tuple[int, ...]

    @property
    def state(self) -> str:
        """done | running | queued | stopped | new: what the cell as a whole is doing."""
        statuses = [s for s in (self.train, self.generate, *self.judges) if s is not None]
        if not statuses:
            return "new"
        wanted = (0 if self.is_base else 1) + 1 + max(1, len(self.judges))
        if len(statuses) >= wanted and all(s == "succeeded" for s in statuses):
            return "done"
        if any(s == "running" for s in statuses):
            return "running"
        if any(s in STOPPED for s in statuses):
            return "stopped"
        return "queued"


@dataclass(frozen=True)
class GridStatus:
    """A grid and its cells, the base row first."""

    name: str
    eval_set: str
    base_variant: str
    cells: tuple[CellStatus, ...]

    @property
    def done(self) -> bool:
        return all(cell.state == "done" for cell in self.cells)

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for cell in self.cells:
            out[cell.state] = out.get(cell.state, 0) + 1
        return out


def _judge_request(eval_set: str, variant: str, spec: dict[str, Any]) -> JudgeRequest:
    return JudgeRequest(eval_set=eval_set, variants=[variant],
                        judge=spec.get("judge", "offline"),
                        protocol=spec.get("protocol", "paper"),
                        model=spec.get("model", "gpt-3.5-turbo"),
                        base_url=spec.get("base_url"))


def cell_train_request(*, variant: str, modalities: list[str] | tuple[str, ...],
                       settings: dict[str, str], base: str, preset: str,
                       datasets: dict[str, str], overrides: dict[str, str], gpus: int,
                       best_checkpoint: bool) -> TrainRequest:
    """The training run of a cell: the grid's training sets of the cell's modalities (`datasets`
    maps each to its modality), weight 1, the grid's overrides with the cell's settings on
    top; with `best_checkpoint` its variant is made from the checkpoint with the lowest
    validation loss."""
    return TrainRequest(variant=variant, base=base, preset=preset,
                        datasets={name: 1.0 for name, modality in datasets.items()
                                  if modality in modalities},
                        overrides={**overrides, **settings}, gpus=gpus,
                        variant_checkpoint="best" if best_checkpoint else "final")


def train_request(grid: Grid, cell: GridCell) -> TrainRequest:
    """The training run of a stored cell (`cell_train_request`)."""
    return cell_train_request(variant=cell.variant, modalities=cell.modalities,
                              settings=cell.settings, base=grid.base, preset=grid.preset,
                              datasets=grid.datasets, overrides=grid.overrides, gpus=grid.gpus,
                              best_checkpoint=grid.best_checkpoint)


def _plan_cells(request: GridRequest, modalities: dict[str, str], base_variant: str
                ) -> tuple[list[dict[str, Any]], list[str]]:
    """The cells of `request` (base row first) as GridCell fields, and the problems found."""
    problems: list[str] = []
    present = tuple(m for m in MODALITIES if m in modalities.values())
    subsets = request.subsets if request.subsets else default_subsets(present)
    for subset in subsets:
        missing = [m for m in subset if m not in present]
        if missing:
            problems.append(f"modalities {'+'.join(MODALITY_WORDS[m] for m in subset)}: no "
                            f"training set of {', '.join(MODALITY_WORDS[m] for m in missing)} "
                            "among the datasets given")
    keys = list(request.axes)
    combos = [dict(zip(keys, values)) for values in itertools.product(
        *(request.axes[k] for k in keys))] or [{}]
    cells: list[dict[str, Any]] = [{"variant": base_variant, "is_base": True, "modalities": [],
                                    "settings": {}}]
    seen: set[str] = set()
    for subset in dict.fromkeys(tuple(s) for s in subsets):
        for settings in combos:
            variant = cell_variant(request.name, subset, settings)
            if variant in seen:
                continue
            seen.add(variant)
            bad = check_name("variant", variant)
            if bad:
                problems.append(f"cell {variant!r}: {bad}")
            cells.append({"variant": variant, "is_base": False, "modalities": list(subset),
                          "settings": dict(settings)})
    return cells, problems


def create_grid(db_engine: Engine, request: GridRequest) -> str:
    """Check `request` against the store and write the grid with its cells (no job yet: see
    `advance_grid`). Returns the grid's name. The base row uses an existing model variant of
    the base model without an adapter, or makes `NAME-base`.

    Raises GridError with every problem on one line before anything is written: a taken or bad
    grid name, unknown datasets or eval set, a modality subset without a training set, a
    cell's training request that would not start (bad preset, field or value), a bad judge."""
    problems: list[str] = []
    bad_name = check_name("grid", request.name)
    if bad_name:
        raise GridError(bad_name)
    with session_scope(db_engine) as session:
        if queries.get_grid(session, name=request.name) is not None:
            raise GridError(f"a grid named {request.name!r} exists already; `ddft ablate run "
                            f"{request.name}` continues it")
        found = find_named(session, eval_set=request.eval_set, datasets=request.datasets)
        problems += found.problems
        if not request.datasets:
            problems.append("datasets: expected at least one training set, got none")
        modalities = {name: dataset.modality for name, dataset in found.datasets.items()}
        base_variant = next((v.name for v in queries.list_variants(session)
                             if v.base_model == request.base and not v.adapter_path), None)
        base_variant = base_variant or f"{request.name}-base"
        cells, cell_problems = _plan_cells(request, modalities, base_variant)
        problems += cell_problems
        pending = [c["variant"] for c in cells]
        with expecting_variants(pending):
            for cell in cells[1:]:
                train = cell_train_request(
                    variant=cell["variant"], modalities=cell["modalities"],
                    settings=cell["settings"], base=request.base, preset=request.preset,
                    datasets=modalities, overrides=request.overrides, gpus=request.gpus,
                    best_checkpoint=request.best_checkpoint)
                problems += [f"cell {cell['variant']}: {p}" for p in train.problems(session)]
            for spec in request.judges:
                judge = _judge_request(request.eval_set, base_variant, spec)
                problems += [f"judge {spec.get('judge')}: {p}" for p in judge.problems(session)]
            generate = GenerateRequest(variant=base_variant, eval_set=request.eval_set,
                                       **request.generation)
            problems += [p for p in generate.problems(session) if "eval set" not in p]
    problems = list(dict.fromkeys(problems))
    if problems:
        raise GridError(f"cannot make grid {request.name}: " + "; ".join(problems))
    with session_scope(db_engine, write=True) as session:
        if queries.get_variant(session, name=base_variant) is None:
            queries.create_variant(session, name=base_variant, base_model=request.base,
                                   description=f"the untuned base of grid {request.name}")
        axes: dict[str, Any] = {"modalities": [list(s) for s in dict.fromkeys(
            tuple(c["modalities"]) for c in cells[1:])], **request.axes}
        queries.create_grid(session, name=request.name, cells=cells, base=request.base,
                            base_variant=base_variant, eval_set=request.eval_set,
                            preset=request.preset, datasets=modalities,
                            overrides=dict(request.overrides), axes=axes,
                            judges=list(request.judges), gpus=request.gpus,
                            best_checkpoint=request.best_checkpoint,
                            generation=dict(request.generation))
    return request.name


def _ensure(db_engine: Engine, job: Job | None, request: Any, *, workspace: Path,
            after: list[int], pending: list[str]) -> tuple[int, str]:
    """The job of `request` in a grid: a new queued one when there is none, a stopped one
    resumed, any other left as it is. Returns (job id, what was done)."""
    from engine.jobs.runner import effective_status, resume_job, submit

    if job is None:
        job_id = submit(db_engine, request, workspace=workspace, after=after,
                        pending_variants=pending)
        return job_id, "queued"
    status = effective_status(job)
    if status in STOPPED:
        resume_job(db_engine, job.id, workspace=workspace)  # type: ignore[arg-type]
        return job.id, "resumed"  # type: ignore[return-value]
    return job.id, status  # type: ignore[return-value]


def advance_grid(db_engine: Engine, name: str, *, workspace: Path) -> dict[str, int]:
    """Queue every job of grid `name` that is missing and resume every one that stopped
    (training from its last checkpoint); finished jobs stay finished. Returns how many jobs
    were queued, resumed and left as they were. Raises GridError for an unknown grid, and
    engine.jobs.JobError when a job cannot be queued (the store changed under the grid)."""
    with session_scope(db_engine) as session:
        grid = queries.get_grid(session, name=name)
        if grid is None:
            raise GridError(f"no grid named {name!r}; `ddft ablate list` shows the grids")
        cells = queries.grid_cells(session, grid_id=grid.id)  # type: ignore[arg-type]
        ids = {i for c in cells for i in (c.train_job_id, c.generate_job_id, *c.judge_job_ids)
               if i is not None}
        jobs = queries.jobs_by_id(session, job_ids=ids)
    counts = {"queued": 0, "resumed": 0, "kept": 0}
    variants = [c.variant for c in cells]

    def note(done: str) -> None:
        counts[done if done in ("queued", "resumed") else "kept"] += 1

    for cell in cells:
        after: list[int] = []
        train_id = cell.train_job_id
        if not cell.is_base:
            train_id, done = _ensure(db_engine, jobs.get(train_id) if train_id else None,
                                     train_request(grid, cell), workspace=workspace, after=[],
                                     pending=variants)
            note(done)
            after = [train_id]
        generate = GenerateRequest(variant=cell.variant, eval_set=grid.eval_set,
                                   **(grid.generation or GENERATION_DEFAULTS))
        generate_id, done = _ensure(db_engine, jobs.get(cell.generate_job_id)
                                    if cell.generate_job_id else None, generate,
                                    workspace=workspace, after=after, pending=variants)
        note(done)
        judge_ids = []
        for index, spec in enumerate(grid.judges or [{"judge": "offline"}]):
            known = cell.judge_job_ids[index] if index < len(cell.judge_job_ids) else None
            judge_id, done = _ensure(db_engine, jobs.get(known) if known else None,
                                     _judge_request(grid.eval_set, cell.variant, spec),
                                     workspace=workspace, after=[generate_id], pending=variants)
            note(done)
            judge_ids.append(judge_id)
        with session_scope(db_engine) as session:
            queries.update_grid_cell(session, cell_id=cell.id,  # type: ignore[arg-type]
                                     train_job_id=train_id if not cell.is_base else None,
                                     generate_job_id=generate_id, judge_job_ids=judge_ids)
    return counts


def grid_jobs(db_engine: Engine, name: str) -> list[int]:
    """Every job id of grid `name`. Raises GridError for an unknown grid."""
    status = grid_status(db_engine, name)
    return [job_id for cell in status.cells for job_id in cell.job_ids]


def cancel_grid(db_engine: Engine, name: str) -> list[int]:
    """Ask every active job of grid `name` to stop (queued ones are cancelled at once; a
    training run saves a checkpoint first); returns their ids. Raises GridError for an unknown
    grid."""
    from engine.jobs.runner import request_cancel

    cancelled = []
    with session_scope(db_engine) as session:
        jobs = queries.jobs_by_id(session, job_ids=grid_jobs(db_engine, name))
    for job_id, job in sorted(jobs.items(), reverse=True):  # dependents first: none starts
        if job.status in ("queued", "running"):
            try:
                request_cancel(db_engine, job_id)
            except JobError:
                continue  # it ended meanwhile
            cancelled.append(job_id)
    return sorted(cancelled)


def grid_status(db_engine: Engine, name: str) -> GridStatus:
    """Grid `name` with each cell's job statuses (as engine.jobs.effective_status reads them).
    Raises GridError for an unknown grid."""
    with session_scope(db_engine) as session:
        return grid_status_in(session, name)


def grid_status_in(session: Any, name: str) -> GridStatus:
    """`grid_status` in an open session."""
    from engine.jobs.runner import effective_status

    grid = queries.get_grid(session, name=name)
    if grid is None:
        raise GridError(f"no grid named {name!r}; `ddft ablate list` shows the grids")
    cells = queries.grid_cells(session, grid_id=grid.id)  # type: ignore[arg-type]
    jobs = queries.jobs_by_id(session, job_ids={
        i for c in cells for i in (c.train_job_id, c.generate_job_id, *c.judge_job_ids)
        if i is not None})

    def status(job_id: int | None) -> str | None:
        job = jobs.get(job_id) if job_id is not None else None
        return effective_status(job) if job is not None else None

    rows = tuple(CellStatus(
        position=c.position, variant=c.variant, is_base=c.is_base,
        modalities=tuple(c.modalities), settings=dict(c.settings),
        train=status(c.train_job_id), generate=status(c.generate_job_id),
        judges=tuple(s for s in (status(i) for i in c.judge_job_ids) if s is not None),
        job_ids=tuple(i for i in (c.train_job_id, c.generate_job_id, *c.judge_job_ids)
                      if i is not None))
        for c in cells)
    return GridStatus(name=grid.name, eval_set=grid.eval_set, base_variant=grid.base_variant,
                      cells=rows)


def list_grid_names(db_engine: Engine) -> list[str]:
    """Every grid's name, newest first."""
    with session_scope(db_engine) as session:
        return [g.name for g in queries.list_grids(session)]


def same_definition(db_engine: Engine, request: GridRequest) -> list[str]:
    """How `request` differs from the stored grid of its name (empty: it asks for the same
    grid, so running the command again continues it). Raises GridError for an unknown grid."""
    with session_scope(db_engine) as session:
        grid = queries.get_grid(session, name=request.name)
        if grid is None:
            raise GridError(f"no grid named {request.name!r}")
        cells = [c for c in queries.grid_cells(session, grid_id=grid.id)  # type: ignore[arg-type]
                 if not c.is_base]
        modalities = {n: d.modality for n in request.datasets
                      if (d := queries.get_dataset(session, name=n)) is not None}
    planned, _ = _plan_cells(request, modalities, grid.base_variant)
    asked = {"base": request.base, "datasets": sorted(request.datasets),
             "eval set": request.eval_set, "preset": request.preset,
             "settings": dict(request.overrides), "judges": list(request.judges),
             "gpus": request.gpus, "best checkpoint": request.best_checkpoint,
             "cells": [c["variant"] for c in planned[1:]]}
    stored = {"base": grid.base, "datasets": sorted(grid.datasets), "eval set": grid.eval_set,
              "preset": grid.preset, "settings": dict(grid.overrides),
              "judges": list(grid.judges), "gpus": grid.gpus,
              "best checkpoint": grid.best_checkpoint, "cells": [c.variant for c in cells]}
    return [f"{key}: stored {stored[key]!r}, asked {asked[key]!r}" for key in asked
            if asked[key] != stored[key]]


def wait_for_grid(db_engine: Engine, name: str, *, on_change: Any = None,
                  poll_s: float = 2.0, should_stop: Any = None) -> GridStatus:
    """Wait until every cell of grid `name` is done or one has stopped without succeeding;
    `on_change(status)` is told each time a cell's state changes. Returns the last status.
    Raises GridError for an unknown grid."""
    import time

    seen: tuple[str, ...] | None = None
    while True:
        status = grid_status(db_engine, name)
        states = tuple(cell.state for cell in status.cells)
        if states != seen:
            seen = states
            if on_change is not None:
                on_change(status)
        if status.done or "stopped" in states or (should_stop is not None and should_stop()):
            return status
        time.sleep(poll_s)
