"""What every importer shares: problems that name file and line, import plans, and applying a plan
to the store in one transaction.

An importer is a reader: it turns files on disk into an `ImportPlan` (datasets with their planned
samples, plus every problem found) and never touches the store. `apply_plan` writes a plan all or
nothing, so a bad file leaves the store as it was.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy.engine import Engine

from db import queries
from db.errors import UserError
from db.store import session_scope

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Problem:
    """One bad row, key or file: where it is and what was expected against what was found."""

    file: str
    message: str  # "expected ..., found ..."
    line: Optional[int] = None
    key: Optional[str] = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f" [{self.key}]"
        return f"{where}: {self.message}"


def read_text_file(path: Path, problems: list[Problem], what: str) -> str | None:
    """A text file's content, or None with a Problem saying what was expected and found."""
    try:
        # utf-8-sig: a file saved by a spreadsheet may start with a byte-order mark.
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.append(Problem(str(path), f"expected {what}, found no such file"))
    except IsADirectoryError:
        problems.append(Problem(str(path), f"expected {what}, found a folder"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(str(path), f"expected {what} as UTF-8 text, found an unreadable "
                                           f"file ({exc})"))
    return None


MEDIA_ROOTS_KEY = "media_roots"  # in a dataset's meta: the folders its media must lie in


def media_roots(*roots: str | os.PathLike[str] | None) -> list[str]:
    """The folders given to an import, each resolved (links followed), once each, in order."""
    return list(dict.fromkeys(os.path.realpath(os.path.expanduser(r)) for r in roots if r))


def outside_media_roots(path: str | os.PathLike[str], roots: Iterable[str], *,
                        resolved: str | None = None) -> str | None:
    """None when `path`, resolved with its links followed, lies inside one of `roots` (resolved
    folders, as `media_roots` gives them); else why not, as "expected ..., found ..." for a
    Problem or a check reason. A path outside would let a dataset file make ddft read, copy
    and train on any file the user can read ("../../etc/shadow", a link to /proc/self/environ).
    `resolved`, when the caller knows it, saves resolving `path` again.
    """
    roots = list(roots)
    resolved = resolved or os.path.realpath(path)
    for root in roots:
        if resolved == root or resolved.startswith(os.path.join(root, "")):
            return None
    named = " or ".join(roots) if roots else "none"
    through = "" if resolved == os.path.normpath(os.path.abspath(path)) else \
        f" (it resolves to {resolved})"
    return (f"expected a media file inside the media root {named}, found {path}{through}; "
            "a dataset whose media lies elsewhere names that folder as its media root")


def dataset_media_roots(root: str, meta: Mapping[str, Any]) -> list[str] | None:
    """The folders a stored dataset's media must lie in: those its import recorded, else (a
    dataset imported before ddft recorded them) its root and the videos folder it names; None
    when it records neither (a dataset made in code, not imported)."""
    recorded = meta.get(MEDIA_ROOTS_KEY)
    if isinstance(recorded, list) and recorded:
        return media_roots(*recorded)
    older = [root, meta.get("videos")] if root else []
    return media_roots(*older) or None


class ImportFailed(UserError, ValueError):
    """The input has problems and nothing was written. `problems` lists all of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        more = f" (and {len(problems) - 1} more problems; --skip-bad imports the good rows)" \
            if len(problems) > 1 else " (--skip-bad imports the good rows)"
        super().__init__(f"{problems[0]}{more}")


@dataclass
class PlannedSample:
    """A Sample row to be: the instruction pair plus where its media lies and what else is known."""

    external_id: str
    modality: str  # image | video | text
    prompt: str
    answer: str
    split: str = "train"
    media_path: Optional[str] = None
    group: str = ""
    duration_s: Optional[float] = None
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "modality": self.modality,
            "prompt": self.prompt,
            "answer": self.answer,
            "split": self.split,
            "media_path": self.media_path,
            "group": self.group,
            "duration_s": self.duration_s,
            "meta": self.meta,
        }


@dataclass
class PlannedDataset:
    name: str
    modality: str
    purpose: str = "train"  # train | eval
    source: str = ""
    root: str = ""
    description: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    samples: list[PlannedSample] = field(default_factory=list)


@dataclass
class ImportPlan:
    datasets: list[PlannedDataset] = field(default_factory=list)
    # Bad input: fatal unless the user asked for --skip-bad, then listed with the summary.
    problems: list[Problem] = field(default_factory=list)
    # Rows left out on purpose, not errors (a video not on disk for an eval subset): (id, reason).
    left_out: list[tuple[str, str]] = field(default_factory=list)
    # Lines for the summary ("408 videos from 62 recipes").
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportSummary:
    dataset: str
    imported: int
    skipped: int  # already in the store


def apply_plan(
    db_engine: Engine, plan: ImportPlan, *, skip_bad: bool = False
) -> list[ImportSummary]:
    """Write a plan's datasets and samples in one transaction; samples already present (same
    dataset, same external id) are skipped, so an import can be re-run.

    Raises ImportFailed, writing nothing, when the plan has problems and `skip_bad` is False.
    """
    if plan.problems and not skip_bad:
        raise ImportFailed(plan.problems)
    summaries = []
    with session_scope(db_engine) as session:
        for planned in plan.datasets:
            dataset = queries.get_or_create_dataset(
                session,
                name=planned.name,
                modality=planned.modality,
                purpose=planned.purpose,
                source=planned.source,
                root=planned.root,
                description=planned.description,
                meta=planned.meta,
            )
            imported, skipped = queries.add_samples(
                session, dataset_id=dataset.id, samples=[s.row() for s in planned.samples]
            )
            summaries.append(ImportSummary(planned.name, imported, skipped))
    return summaries
