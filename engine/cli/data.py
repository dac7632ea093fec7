"""`ddft data`: import datasets as their authors publish them, check them, export them for
other trainers, list and show them."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Annotated, Callable, Optional

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from engine.cli.console import (
    WorkspaceOption,
    checked_name,
    console,
    err_console,
    fail,
    friendly,
    launch,
    open_workspace,
    print_json,
    print_table,
    progress_bar,
)
from engine.evaluation.words import plural
from engine.llm import BASE_URL_VARIABLE

dataset_name = checked_name("dataset")
app = typer.Typer(help="Datasets: import, check, export, list, show.", no_args_is_help=True)
import_app = typer.Typer(
    help="Import a dataset from its published layout (one transaction, safe to re-run).",
    no_args_is_help=True,
)
app.add_typer(import_app, name="import")

SkipBadOption = Annotated[
    bool, typer.Option("--skip-bad", help="Import the good rows and list the bad ones, instead "
                       "of importing nothing.")
]
NameOption = Annotated[Optional[str], typer.Option("--name", help="Dataset name in the store.",
                                                   callback=dataset_name)]


class FoodxSplit(str, Enum):
    """engine.importers.foodx.SPLITS, declared here so a wrong one is refused before import."""

    train = "train"
    val = "val"
    test = "test"


class Youcook2Subset(str, Enum):
    """The keys of engine.importers.youcook2.SUBSET_NAMES (each subset and its short name)."""

    training = "training"
    validation = "validation"
    testing = "testing"
    train = "train"
    val = "val"
    test = "test"


def _run_import(workspace: Path | None, read: Callable, *, skip_bad: bool, what: str) -> None:
    """Read with a progress bar, write in one transaction, print the summary."""
    from engine.importers.base import ImportFailed, apply_plan

    _, db_engine = open_workspace(workspace, create=True)
    with progress_bar() as bar:
        task = bar.add_task(f"reading {what}", total=None, message="")

        def update(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total or None, message=message or "")

        plan = read(update)
    if plan.problems and not skip_bad:
        err_console.print(f"[bold red]error:[/] {plural(len(plan.problems), 'problem')} in "
                          f"{escape(what)}; nothing was imported:", soft_wrap=True)
        for problem in plan.problems[:20]:
            err_console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        if len(plan.problems) > 20:
            err_console.print(f"  … and {len(plan.problems) - 20} more")
        if any(dataset.samples for dataset in plan.datasets):
            err_console.print("  (--skip-bad imports the good rows and lists the bad ones)")
        raise typer.Exit(1)
    try:
        summaries = apply_plan(db_engine, plan, skip_bad=skip_bad)
    except ImportFailed as exc:  # cannot happen after the check above, kept for safety
        fail(str(exc))
        return
    for summary in summaries:
        console.print(f"[bold]{escape(summary.dataset)}[/]: imported {summary.imported}, "
                      f"skipped {summary.skipped} already in the store")
    if plan.left_out:
        reasons = Counter(reason for _, reason in plan.left_out)
        console.print(f"left out {len(plan.left_out)}:")
        for reason, count in reasons.most_common():
            console.print(f"  {count} × {reason}", markup=False, highlight=False)
    if plan.problems:
        console.print(f"[yellow]skipped {plural(len(plan.problems), 'bad row')}:[/]")
        for problem in plan.problems[:50]:
            console.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        if len(plan.problems) > 50:
            console.print(f"  … and {len(plan.problems) - 50} more")
    for note in plan.notes:
        console.print(note, markup=False, highlight=False)


@import_app.command("foodx251")
@friendly
def import_foodx(
    root: Annotated[Path, typer.Argument(help="FoodX-251 root: annot/ and train_set/ val_set/ "
                                         "test_set/.")],
    split: Annotated[FoodxSplit, typer.Option(help="train, val or test.")] = FoodxSplit.train,
    classes: Annotated[Optional[list[str]], typer.Option("--class", help="Only this class "
                                                         "(name or id; repeat).")] = None,
    per_class: Annotated[Optional[int], typer.Option(min=1, help="At most this many images "
                                                     "per class.")] = None,
    name: NameOption = None,
    skip_bad: SkipBadOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """FoodX-251 (iFood 2019) images → "What is the dish in this image?" → the dish name."""
    from engine.importers.foodx import read_foodx

    _run_import(workspace, lambda progress: read_foodx(
        root.resolve(), split=split.value, classes=classes, per_class=per_class, name=name,
        progress=progress), skip_bad=skip_bad, what=str(root))


@import_app.command("tasty")
@friendly
def import_tasty(
    root: Annotated[Path, typer.Argument(help="Folder of recipe folders (<slug>/recipe.xml, "
                                         "csvalignment.dat, fps.txt, recipe_video.mp4).")],
    split_file: Annotated[Optional[Path], typer.Option(help="File listing the slugs to import "
                                                       "(e.g. SPLITS/split_4022/TRAIN_4022.txt)."
                                                       )] = None,
    name: NameOption = None,
    skip_bad: SkipBadOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Tasty recipe videos → the recipe prompt → the recipe with measurements and steps."""
    from engine.importers.tasty import read_tasty

    _run_import(workspace, lambda progress: read_tasty(
        root.resolve(), split_file=split_file.resolve() if split_file else None, name=name,
        progress=progress), skip_bad=skip_bad, what=str(root))


@import_app.command("youcook2")
@friendly
def import_youcook2(
    root: Annotated[Path, typer.Argument(help="YouCook2 root: annotations/, splits/, "
                                         "label_foodtype.csv, raw_videos/.")],
    references: Annotated[Optional[Path], typer.Option(help="Reference recipes (JSON or CSV; "
                                                       "see docs/formats/youcook2-references.md)."
                                                       )] = None,
    subset: Annotated[Optional[list[Youcook2Subset]], typer.Option(
        help="training, validation or testing (repeat); default validation.")] = None,
    min_videos_per_recipe: Annotated[int, typer.Option(min=1, help="Keep recipe types with at "
                                                       "least this many videos.")] = 1,
    limit: Annotated[Optional[int], typer.Option(min=0, help="At most this many videos.")
                     ] = None,
    videos: Annotated[Optional[Path], typer.Option(help="Raw videos folder (default "
                                                   "ROOT/raw_videos).")] = None,
    annotations: Annotated[Optional[Path], typer.Option(help="Annotations JSON (default "
                                                        "ROOT/annotations/youcookii_annotations"
                                                        "_trainval.json).")] = None,
    require_reference: Annotated[bool, typer.Option(
        "--require-reference/--allow-annotated-steps",
        help="With --references: keep only videos that have a reference recipe, or fall back "
             "to the annotated step sentences for the others.")] = True,
    name: NameOption = None,
    skip_bad: SkipBadOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """YouCook2 → an eval set of videos with reference recipes and step segments (subsets:
    training, validation, testing)."""
    from engine.importers.youcook2 import read_youcook2

    _run_import(workspace, lambda progress: read_youcook2(
        root.resolve(), references=references.resolve() if references else None,
        subsets=tuple(s.value for s in subset) if subset else ("validation",),
        min_videos_per_recipe=min_videos_per_recipe,
        limit=limit, videos=videos.resolve() if videos else None, name=name,
        annotations=annotations.resolve() if annotations else None,
        require_reference=require_reference, progress=progress),
        skip_bad=skip_bad, what=str(root))


@import_app.command("llava")
@friendly
def import_llava(
    path: Annotated[Path, typer.Argument(help="LLaVA / Video-LLaVA instruction JSON.")],
    media_root: Annotated[Optional[Path], typer.Option(help="Folder the media paths are "
                                                       "relative to.")] = None,
    image_root: Annotated[Optional[Path], typer.Option(help="Images folder (Video-LLaVA's "
                                                       "--image_folder).")] = None,
    video_root: Annotated[Optional[Path], typer.Option(help="Videos folder (Video-LLaVA's "
                                                       "--video_folder).")] = None,
    split: Annotated[str, typer.Option(help="Split to record.")] = "train",
    name: NameOption = None,
    skip_bad: SkipBadOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """LLaVA-format JSON (id, image or video, conversations) → one dataset per modality."""
    from engine.importers.llava import read_llava_json

    resolved = {k: v.resolve() if v else None
                for k, v in dict(media_root=media_root, image_root=image_root,
                                 video_root=video_root).items()}
    _run_import(workspace, lambda progress: read_llava_json(
        path.resolve(), name=name, split=split, progress=progress, **resolved),
        skip_bad=skip_bad, what=str(path))


@import_app.command("questions")
@friendly
def import_questions(
    folder: Annotated[Path, typer.Argument(help="Folder written by `ddft data "
                                           "generate-questions`.")],
    name: Annotated[str, typer.Option(help="Dataset name.", callback=dataset_name)
                    ] = "cooking-questions",
    skip_bad: SkipBadOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Generated cooking questions → a text dataset."""
    from engine.questions import questions_plan

    _run_import(workspace, lambda progress: questions_plan(folder.resolve(), name=name),
                skip_bad=skip_bad, what=str(folder))


@import_app.command("kitchen")
@friendly
def import_kitchen_cmd(
    root: Annotated[Optional[Path], typer.Argument(help="Kitchen folder (default: build one in "
                                                   "WORKSPACE/kitchen).")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the rendering.")] = 0,
    workspace: WorkspaceOption = None,
) -> None:
    """The synthetic kitchen: built when missing, then imported as three training sets and an
    eval set."""
    from engine.demo import build_and_import_kitchen

    path, db_engine = open_workspace(workspace, create=True)
    for summary in build_and_import_kitchen(db_engine, root or path / "kitchen", seed=seed,
                                            console=console):
        console.print(f"{summary.dataset}: imported {summary.imported}, "
                      f"skipped {summary.skipped} already in the store", markup=False)


@app.command("kitchen", hidden=True)
@friendly
def kitchen(workspace: WorkspaceOption = None,
            seed: Annotated[int, typer.Option(min=0)] = 0) -> None:
    """Same as `ddft data import kitchen`."""
    import_kitchen_cmd(root=None, seed=seed, workspace=workspace)


@app.command("generate-questions")
@friendly
def generate_questions_cmd(
    n: Annotated[int, typer.Option("--n", min=1, help="How many unique questions to have.")
                 ] = 4000,
    out: Annotated[Optional[Path], typer.Option(help="Folder for the questions (resumable; "
                                                "default WORKSPACE/questions).")] = None,
    model: Annotated[str, typer.Option(help="Chat model.")] = "gpt-3.5-turbo",
    base_url: Annotated[Optional[str], typer.Option(
        envvar=BASE_URL_VARIABLE, show_default=False,
        help="OpenAI-compatible endpoint (default: OpenAI's).")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight.")] = 8,
    name: Annotated[str, typer.Option(help="Dataset to import them into.",
                                      callback=dataset_name)] = "cooking-questions",
    workspace: WorkspaceOption = None,
) -> None:
    """Generate general cooking questions with answers through an OpenAI-compatible API, then
    import them as a text dataset. The key comes from $OPENAI_API_KEY and is never stored;
    an interrupted run continues where it stopped."""
    from db.errors import UserError
    from engine.questions import generate_questions, questions_plan

    path, db_engine = open_workspace(workspace, create=True)  # it imports a dataset
    folder = (out or path / "questions").resolve()
    with progress_bar() as bar:
        task = bar.add_task("questions", total=n, message="")

        def update(state) -> None:
            cost = "" if state.cost_usd is None else f" · ${state.cost_usd:.4f}"
            bar.update(task, completed=state.accepted, total=state.target,
                       message=f"{state.requests} requests · {state.duplicates} duplicates · "
                               f"{state.tokens_in + state.tokens_out} tokens{cost}")

        try:
            run = generate_questions(n=n, out_dir=folder, model=model, base_url=base_url,
                                     concurrency=concurrency, progress=update)
        except UserError as exc:  # QuestionError and engine.llm's errors
            fail(str(exc))
            return
    console.print(f"{run}", markup=False, highlight=False)
    _run_import(path, lambda progress: questions_plan(folder, name=name), skip_bad=False,
                what=str(folder))


@app.command("check")
@friendly
def check(
    datasets: Annotated[Optional[list[str]], typer.Argument(help="Datasets to check (default: "
                                                            "every training dataset).")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model whose tokenizer and context the "
                                                 "token budget uses (directory or hub id).")
                     ] = None,
    workspace: WorkspaceOption = None,
    detach: Annotated[bool, typer.Option("--detach", help="Run as a background job and return "
                                         "at once.")] = False,
    show_failed: Annotated[bool, typer.Option(
        "--show-failed", help="Check nothing: list every sample the last check failed, with its "
        "file and reasons.")] = False,
) -> None:
    """Check every sample before training: media decodes (8+ frames), token budget, duplicates,
    leakage into the eval set. Failures are marked with reasons and left out of training; the
    first 20 are listed with their files, and --show-failed lists them all."""
    from db import queries
    from db.store import session_scope
    from engine.jobs import CheckRequest

    path, db_engine = open_workspace(workspace)
    if show_failed:
        _print_failed(db_engine, list(datasets or []), limit=None)
        return
    if model is None:
        # The newest base model that lies on disk: counting tokens must never download one.
        with session_scope(db_engine) as session:
            bases = [v.base_model for v in reversed(queries.list_variants(session))]
        model = next((b for b in bases if Path(b).is_dir()), None)
        if model:
            console.print(f"token budget: {model} (the newest local base model; --model "
                          "chooses another)", markup=False, highlight=False)
    job = launch(db_engine, path, CheckRequest(datasets=list(datasets or []), model=model),
                 detach=detach)
    if job is None:
        return
    summary = job.result
    console.print(f"checked {summary['checked']}: {summary['ok']} ok, {summary['warned']} with "
                  f"warnings, {summary['failed']} failed (left out of training)")
    for reason, count in sorted(summary["reasons"].items(), key=lambda item: -item[1]):
        console.print(f"  {count} × {reason}", markup=False, highlight=False)
    for note in summary["notes"]:
        console.print(note, markup=False, highlight=False)
    if summary["failed"]:
        _print_failed(db_engine, list(datasets or []), limit=FAILED_SHOWN)


FAILED_SHOWN = 20


def _print_failed(db_engine, datasets: list[str], *, limit: int | None) -> None:
    """The samples of `datasets` the last check failed, one line each with its reasons, the
    first `limit` of them and a command that lists the rest."""
    import shlex

    from engine.checks import failed_samples

    try:
        failed, total = failed_samples(db_engine, datasets=datasets or None, limit=limit)
    except KeyError as exc:
        fail(str(exc.args[0]))
        return
    if not failed:
        console.print("no failed samples in " + (", ".join(datasets) or "the training sets")
                      + " (`ddft data check` marks them)", markup=False, highlight=False)
        return
    console.print("failed samples:")
    for sample in failed:
        console.print(f"  sample {sample.sample_id} ({sample.dataset} {sample.external_id}): "
                      + "; ".join(sample.reasons), markup=False, highlight=False, soft_wrap=True)
    if total > len(failed):
        command = " ".join(["ddft data check --show-failed", *map(shlex.quote, datasets)])
        console.print(f"  … and {total - len(failed)} more: {command} lists them all",
                      markup=False, highlight=False, soft_wrap=True)


class ExportFormat(str, Enum):
    llava = "llava"
    llama_factory = "llama-factory"


@app.command("export")
@friendly
def export(
    dataset: Annotated[str, typer.Argument(help="Dataset to export.")],
    out: Annotated[Path, typer.Argument(help="JSON file to write.")],
    media_root: Annotated[Optional[Path], typer.Option(
        help="Folder the written media paths are relative to (needed for llava; for "
             "llama-factory, give it as LLaMA-Factory's media_dir, or leave it out for "
             "absolute paths).", show_default=False)] = None,
    fmt: Annotated[ExportFormat, typer.Option(
        "--format", help="llava: LLaVA / Video-LLaVA instruction JSON for the original "
                         "training scripts; llama-factory: LLaMA-Factory's ShareGPT JSON and "
                         "its entry in dataset_info.json beside it.")] = ExportFormat.llava,
    name: Annotated[Optional[str], typer.Option(
        help="llama-factory: the dataset's name in dataset_info.json (default: the dataset's "
             "name).", show_default=False)] = None,
    included_only: Annotated[bool, typer.Option(help="Only samples included for training.")
                             ] = True,
    workspace: WorkspaceOption = None,
) -> None:
    """Write a dataset for another trainer: LLaVA / Video-LLaVA instruction JSON for the
    original training scripts, or LLaMA-Factory's ShareGPT JSON registered in the
    dataset_info.json of the same folder (other entries there are kept)."""
    from db import queries
    from db.store import session_scope
    from engine.importers.llama_factory import export_llama_factory
    from engine.importers.llava import export_llava_json

    if fmt is ExportFormat.llava and media_root is None:
        fail("--media-root is needed for --format llava: the folder its media paths are "
             "relative to (Video-LLaVA's --image_folder / --video_folder)")
    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        found = queries.get_dataset(session, name=dataset)
        if found is None:
            fail(f"no dataset named {dataset!r}; `ddft data list` shows the datasets")
        samples = queries.list_samples(session, dataset_id=found.id,
                                       included=True if included_only else None, limit=None)
    root = media_root.resolve() if media_root is not None else None
    try:
        if fmt is ExportFormat.llava:
            count = export_llava_json(samples, out, media_root=root)
        else:
            count = export_llama_factory(samples, out, name=name or dataset, media_root=root)
    except ValueError as exc:
        fail(str(exc))
        return
    console.print(f"wrote {plural(count, 'entry', 'entries')} to {out}", markup=False,
                  highlight=False)
    if fmt is ExportFormat.llama_factory:
        where = f"media_dir: {root}" if root is not None else "media paths are absolute"
        console.print(f"registered {name or dataset!r} in {out.parent / 'dataset_info.json'} "
                      f"(train with dataset: {name or dataset}, dataset_dir: {out.parent}; "
                      f"{where})", markup=False, highlight=False, soft_wrap=True)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead of "
                                          "a table.")]
CHECK_COUNTS = ("ok", "warn", "failed", "unchecked")


def _dataset_summary(session, dataset) -> dict:
    """What `data list` and `data show` print about a dataset, in one reading."""
    from db import queries

    def count(**kw) -> int:
        return queries.count_samples(session, dataset_id=dataset.id, **kw)

    return {"id": dataset.id, "name": dataset.name, "modality": dataset.modality,
            "purpose": dataset.purpose, "source": dataset.source, "samples": count(),
            "included": count(included=True),
            "checks": {status: count(check_status=status) for status in CHECK_COUNTS}}


@app.command("list")
@friendly
def list_datasets(json_out: JsonOption = False, workspace: WorkspaceOption = None) -> None:
    """Datasets with their sample counts and check results."""
    from db import queries
    from db.store import session_scope

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        summaries = [_dataset_summary(session, d) for d in queries.list_datasets(session)]
    if json_out:
        print_json(summaries)
        return
    if not summaries:
        console.print("no datasets yet: `ddft data import kitchen` or `ddft demo` makes some")
        return
    table = Table("id", "name", "modality", "purpose", "source", "samples", "included",
                  "checked ok", "failed")
    for d in summaries:
        table.add_row(str(d["id"]), Text(d["name"]), d["modality"], d["purpose"],
                      Text(d["source"]), str(d["samples"]), str(d["included"]),
                      str(d["checks"]["ok"]), str(d["checks"]["failed"]))
    print_table(table)


@app.command("show")
@friendly
def show(
    dataset: Annotated[str, typer.Argument(help="Dataset to show.")],
    json_out: JsonOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """One dataset: where its files lie, the folders its media must stay in, its samples per
    split, included and by check result."""
    from db import queries
    from db.store import session_scope
    from engine.importers.base import dataset_media_roots

    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        found = queries.get_dataset(session, name=dataset)
        if found is None:
            fail(f"no dataset named {dataset!r}; `ddft data list` shows the datasets")
        summary = _dataset_summary(session, found)
        splits = {split: queries.count_samples(session, dataset_id=found.id, split=split)
                  for split in queries.sample_splits(session)}
        summary |= {"description": found.description, "root": found.root,
                    "media_roots": dataset_media_roots(found.root, found.meta),
                    "splits": {k: v for k, v in splits.items() if v},
                    "created_at": found.created_at.isoformat()}
    if json_out:
        print_json(summary)
        return
    checks = summary["checks"]
    lines = [f"dataset {summary['name']} (id {summary['id']}): {summary['modality']}, "
             f"{summary['purpose']}, from {summary['source'] or 'unknown'}",
             f"{plural(summary['samples'], 'sample')}, {summary['included']} included; "
             f"checked: {checks['ok']} ok, {checks['warn']} with warnings, "
             f"{checks['failed']} failed, {checks['unchecked']} unchecked",
             "splits: " + (", ".join(f"{name} {count}" for name, count
                                     in summary["splits"].items()) or "none"),
             f"files in: {summary['root'] or '—'}",
             "media must lie in: " + (", ".join(summary["media_roots"] or []) or "—")]
    if summary["description"]:
        lines.append(summary["description"])
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)


class CheckStatus(str, Enum):
    """db.models.CHECK_STATUSES, declared here so a wrong one is refused before the store opens."""

    unchecked = "unchecked"
    ok = "ok"
    warn = "warn"
    failed = "failed"


def _set_included(included: bool, sample_ids: list[int] | None, datasets: list[str] | None,
                  check_status: CheckStatus | None, search: str | None, dry_run: bool,
                  workspace: Path | None) -> None:
    """Include or exclude what the selection names, through the same queries as the Samples
    screen's i/e (db.queries.filtered_sample_ids, set_samples_included), in one transaction."""
    from db import queries
    from db.store import session_scope

    if not (sample_ids or datasets or check_status or (search and search.strip())):
        fail("name the samples: sample ids, --dataset, --check-status or --search "
             "(`--dataset NAME` for a whole dataset)")
    verb = "include" if included else "exclude"
    _, db_engine = open_workspace(workspace)
    with session_scope(db_engine) as session:
        dataset_ids: list[int | None] = [None]
        if datasets:
            dataset_ids = []
            for name in dict.fromkeys(datasets):
                found = queries.get_dataset(session, name=name)
                if found is None:
                    fail(f"no dataset named {name!r}; `ddft data list` shows the datasets")
                dataset_ids.append(found.id)
        selected: set[int] = set()
        for dataset_id in dataset_ids:
            selected.update(queries.filtered_sample_ids(
                session, dataset_id=dataset_id, search=search or None,
                check_status=check_status.value if check_status else None))
        if sample_ids:
            missing = [i for i in dict.fromkeys(sample_ids)
                       if queries.get_sample(session, sample_id=i) is None]
            if missing:
                fail(f"no sample with id {', '.join(map(str, missing[:10]))}"
                     + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""))
            selected &= set(sample_ids)
        ids = sorted(selected)
        changed = queries.set_samples_included(session, sample_ids=ids, included=included)
        if dry_run:
            # The same update, rolled back: the count is exactly what a real run changes.
            session.rollback()
            console.print(f"would {verb} {changed} of {len(ids)} selected samples "
                          "(dry run: nothing changed)")
            return
    already = "included" if included else "excluded"
    console.print(f"{verb}d {changed} of {len(ids)} selected samples "
                  f"({len(ids) - changed} were {already} already)")


SampleIdsArgument = Annotated[Optional[list[int]], typer.Argument(
    help="Sample ids (the Samples screen's id column); with filters, only those that match.",
    show_default=False)]
DatasetFilter = Annotated[Optional[list[str]], typer.Option(
    "--dataset", help="Samples of this dataset (repeat).", show_default=False)]
CheckStatusFilter = Annotated[Optional[CheckStatus], typer.Option(
    "--check-status", help="Samples `ddft data check` marked so.", show_default=False)]
SearchFilter = Annotated[Optional[str], typer.Option(
    "--search", help="Samples whose prompt, answer or external id has these words (as the "
                     "Samples screen's search).", show_default=False)]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Say how many samples would "
                                            "change; change nothing.")]


@app.command("include")
@friendly
def include(
    sample_ids: SampleIdsArgument = None,
    dataset: DatasetFilter = None,
    check_status: CheckStatusFilter = None,
    search: SearchFilter = None,
    dry_run: DryRunOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Include samples in training: by id, dataset, check status or a search, all given
    filters together (the Samples screen's i, headless)."""
    _set_included(True, sample_ids, dataset, check_status, search, dry_run, workspace)


@app.command("exclude")
@friendly
def exclude(
    sample_ids: SampleIdsArgument = None,
    dataset: DatasetFilter = None,
    check_status: CheckStatusFilter = None,
    search: SearchFilter = None,
    dry_run: DryRunOption = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Leave samples out of training: by id, dataset, check status or a search, all given
    filters together (the Samples screen's e, headless)."""
    _set_included(False, sample_ids, dataset, check_status, search, dry_run, workspace)


from engine.cli.timeaware import data_timestamps  # noqa: E402 (registered with the group)

app.command("timestamps")(data_timestamps)
