"""Pages of samples and their filter choices, read from the store as plain rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

PAGE_SIZE = 50
# The preview must fit beside the detail pane on a 160-column terminal.
PREVIEW_PROMPT_CHARS = 18
PREVIEW_ANSWER_CHARS = 30
PLACEHOLDERS = {"image": "<image>", "video": "<video>"}


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

    @property
    def active(self) -> bool:
        return any((self.dataset_id is not None, self.modality, self.split, self.search.strip()))


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


def sample_row(sample: Any, dataset: str) -> SampleRow:
    meta = sample.meta or {}
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
    )


def load_filter_choices(engine: Engine) -> FilterChoices:
    from db.models import MODALITIES
    from db.queries import list_datasets, sample_splits
    from db.store import session_scope

    with session_scope(engine) as session:
        datasets = tuple((d.id, d.name) for d in list_datasets(session))
        splits = tuple(sample_splits(session))
    return FilterChoices(datasets=datasets, modalities=MODALITIES, splits=splits)


def load_page(engine: Engine, filters: SampleFilters, offset: int, page_size: int = PAGE_SIZE) -> SamplePage:
    """The page of samples at `offset` (moved back to the last page when past the end)."""
    from db.queries import count_samples, list_datasets, list_samples
    from db.store import session_scope

    criteria = {
        "dataset_id": filters.dataset_id,
        "modality": filters.modality,
        "split": filters.split,
        "search": filters.search.strip() or None,
    }
    with session_scope(engine) as session:
        names = {d.id: d.name for d in list_datasets(session)}
        total = count_samples(session, **criteria)
        if offset >= total:
            offset = max(0, (total - 1) // page_size * page_size)
        samples = list_samples(session, **criteria, offset=max(0, offset), limit=page_size)
        rows = tuple(sample_row(s, names.get(s.dataset_id, "?")) for s in samples)
    return SamplePage(filters=filters, offset=offset, total=total, rows=rows, page_size=page_size)


def set_included(engine: Engine, sample_id: int, included: bool) -> bool:
    """Store whether a sample is included in training; returns the stored value.

    Raises KeyError for an unknown sample id.
    """
    from db.queries import set_sample_included
    from db.store import session_scope

    with session_scope(engine) as session:
        return set_sample_included(session, sample_id=sample_id, included=included).included
