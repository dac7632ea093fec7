"""Pages of samples and their filter choices, read from the store as plain rows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PAGE_SIZE = 50
# The preview must fit beside the detail pane on a 160-column terminal.
PREVIEW_PROMPT_CHARS = 18
PREVIEW_ANSWER_CHARS = 30
PLACEHOLDERS = {"image": "<image>", "video": "<video>"}
# As db.models.CHECK_STATUSES; repeated so that importing the workbench does not import the store.
CHECK_STATUSES = ("unchecked", "ok", "warn", "failed")


@dataclass(frozen=True)
class Segment:
    """One annotated step of a video (YouCook2 style)."""

    start: float
    end: float
    id: Any
    sentence: str


@dataclass(frozen=True)
class SampleRow:
    id: int
    dataset: str
    external_id: str
    modality: str
    split: str
    included: bool
    prompt: str
    answer: str
    media_path: str | None
    duration_s: float | None
    group: str
    frame_times: tuple[float, ...] | None  # None: the video was not probed
    segments: tuple[Segment, ...]
    check_status: str = "unchecked"
    check_reasons: tuple[str, ...] = ()
    tokens: int | None = None  # prompt + answer + media tokens, counted by `ddft data check --model`
    fps: float | None = None
    n_frames: int | None = None  # frames in the whole video, not the 8 sampled ones
    frame_strip: str | None = None  # PNG of the sampled frames side by side, made by `ddft data check`

    @property
    def preview(self) -> str:
        return f"{_shorten(self.prompt, PREVIEW_PROMPT_CHARS)} → {_shorten(self.answer, PREVIEW_ANSWER_CHARS)}"

    @property
    def human_turn(self) -> str:
        """The human turn as the model sees it, with its media placeholder."""
        placeholder = PLACEHOLDERS.get(self.modality)
        if placeholder is None or placeholder in self.prompt:
            return self.prompt
        return f"{placeholder}\n{self.prompt}"


@dataclass(frozen=True)
class SampleFilters:
    dataset_id: int | None = None
    modality: str | None = None
    split: str | None = None
    search: str = ""
    check_status: str | None = None
    included: bool | None = None

    @property
    def active(self) -> bool:
        return any((self.dataset_id is not None, self.modality, self.split, self.search.strip(),
                    self.check_status, self.included is not None))

    def criteria(self) -> dict[str, Any]:
        """The keyword arguments of db.queries.list_samples, count_samples and filtered_sample_ids."""
        return {
            "dataset_id": self.dataset_id,
            "modality": self.modality,
            "split": self.split,
            "search": self.search.strip() or None,
            "check_status": self.check_status,
            "included": self.included,
        }


@dataclass(frozen=True)
class SamplePage:
    filters: SampleFilters
    offset: int
    total: int
    rows: tuple[SampleRow, ...]
    page_size: int = PAGE_SIZE

    @property
    def label(self) -> str:
        if not self.rows:
            return f"rows 0 of {self.total}"
        first = self.offset + 1
        last = self.offset + len(self.rows)
        pages = (self.total + self.page_size - 1) // self.page_size
        page = self.offset // self.page_size + 1
        return f"rows {first}–{last} of {self.total} · page {page}/{pages}"

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.rows) < self.total

    @property
    def has_prev(self) -> bool:
        return self.offset > 0


@dataclass(frozen=True)
class FilterChoices:
    datasets: tuple[tuple[int, str], ...]
    modalities: tuple[str, ...]
    splits: tuple[str, ...]

    @property
    def dataset_names(self) -> dict[int, str]:
        return dict(self.datasets)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _frame_times(meta: dict[str, Any]) -> tuple[float, ...] | None:
    times = meta.get("frame_times")
    if not isinstance(times, (list, tuple)) or not times:
        return None
    try:
        return tuple(float(t) for t in times)
    except (TypeError, ValueError):
        return None


def _segments(meta: dict[str, Any]) -> tuple[Segment, ...]:
    found = []
    for item in meta.get("segments") or ():
        # Imported annotations vary; a malformed step is skipped rather than failing the page.
        try:
            start, end = item["segment"]
            found.append(Segment(float(start), float(end), item.get("id"), str(item.get("sentence", ""))))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(found)


def _number(meta: dict[str, Any], key: str, kind: type) -> Any:
    try:
        value = kind(meta[key])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def sample_row(sample: Any, dataset: str) -> SampleRow:
    meta = sample.meta or {}
    strip = meta.get("frame_strip")
    return SampleRow(
        id=sample.id,
        dataset=dataset,
        external_id=sample.external_id,
        modality=sample.modality,
        split=sample.split,
        included=bool(sample.included),
        prompt=sample.prompt,
        answer=sample.answer,
        media_path=sample.media_path,
        duration_s=sample.duration_s,
        group=sample.group,
        frame_times=_frame_times(meta),
        segments=_segments(meta),
        check_status=sample.check_status if sample.check_status in CHECK_STATUSES else "unchecked",
        check_reasons=tuple(str(r) for r in sample.check_reasons or ()),
        tokens=_number(meta, "tokens", int),
        fps=_number(meta, "fps", float),
        n_frames=_number(meta, "n_frames", int),
        frame_strip=strip if isinstance(strip, str) and strip else None,
    )


def load_filter_choices(db_engine: Engine) -> FilterChoices:
    from db.models import MODALITIES
    from db.queries import list_datasets, sample_splits
    from db.store import session_scope

    with session_scope(db_engine) as session:
        datasets = tuple((d.id, d.name) for d in list_datasets(session))
        splits = tuple(sample_splits(session))
    return FilterChoices(datasets=datasets, modalities=MODALITIES, splits=splits)


def load_page(
    db_engine: Engine,
    filters: SampleFilters,
    offset: int,
    *,
    dataset_names: Mapping[int, str],
    page_size: int = PAGE_SIZE,
) -> SamplePage:
    """The page of samples at `offset` (moved back to the last page when past the end).

    One count and one page query: dataset names come from the caller's filter choices, which
    are read once, not on every page.
    """
    from db.queries import count_samples, list_samples
    from db.store import session_scope

    criteria = filters.criteria()
    with session_scope(db_engine) as session:
        total = count_samples(session, **criteria)
        if offset >= total:
            offset = max(0, (total - 1) // page_size * page_size)
        samples = list_samples(session, **criteria, offset=max(0, offset), limit=page_size)
        rows = tuple(sample_row(s, dataset_names.get(s.dataset_id, "?")) for s in samples)
    return SamplePage(filters=filters, offset=offset, total=total, rows=rows, page_size=page_size)


def set_included(db_engine: Engine, sample_id: int, included: bool) -> bool:
    """Store whether a sample is included in training; returns the stored value.

    Raises KeyError for an unknown sample id.
    """
    from db.queries import set_sample_included
    from db.store import session_scope

    with session_scope(db_engine) as session:
        return set_sample_included(session, sample_id=sample_id, included=included).included


def set_included_many(
    db_engine: Engine,
    included: bool,
    *,
    sample_ids: Sequence[int] | None = None,
    filters: SampleFilters | None = None,
) -> tuple[frozenset[int], int]:
    """Include or exclude the samples `sample_ids`, or every sample `filters` selects (all
    pages), in one transaction. Returns the ids acted on and how many of them changed.

    Raises ValueError when given neither ids nor filters.
    """
    from db.queries import filtered_sample_ids, set_samples_included
    from db.store import session_scope

    if sample_ids is None and filters is None:
        raise ValueError("set_included_many needs sample_ids or filters")
    with session_scope(db_engine) as session:
        ids = list(sample_ids) if sample_ids is not None else filtered_sample_ids(
            session, **filters.criteria())  # type: ignore[union-attr]
        changed = set_samples_included(session, sample_ids=ids, included=included)
    return frozenset(ids), changed
