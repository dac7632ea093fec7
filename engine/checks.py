"""`ddft data check`: every sample checked before GPU time is spent, failures marked with reasons.

Checks: a video decodes and has at least 8 frames; an image opens; prompt, answer and media tokens
fit the model's context; no two samples share content (by hash); no training sample shares a
media file with the eval set (a failure) or a recipe or dish with it (a warning: the synthetic
kitchen's held-out videos show the dishes it trains on, by design). A failed sample is marked and
left out of training, never silently replaced.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from sqlalchemy.engine import Engine

from db import queries
from db.models import Dataset, Sample, utcnow
from db.store import session_scope
from engine.importers.base import dataset_media_roots, outside_media_roots
from engine.media import DEFAULT_FRAMES, MediaError

# Tokens one medium takes in Video-LLaVA-7B's input: 256 per image, 257 per frame × 8 per video.
REAL_MEDIA_TOKENS = {"image": 256, "video": 2056, "text": 0}


@dataclass
class CheckSummary:
    checked: int = 0
    ok: int = 0
    warned: int = 0
    failed: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def count(self, reason: str) -> None:
        kind = reason.split(":")[0]
        self.reasons[kind] = self.reasons.get(kind, 0) + 1


@dataclass
class TokenBudget:
    """How samples are measured against the model's context."""

    count: Callable[[str], int]
    media_tokens: dict[str, int]
    max_length: int
    model: str


def token_budget(model: str) -> TokenBudget:
    """The tokenizer, media token counts and context length of a model (directory or hub id).

    Raises engine.model.loading.ModelLoadError when the model cannot be opened.
    """
    from engine.jobs.train_settings import resolve_base
    from engine.model.loading import ModelLoadError, quiet_transformers

    # transformers loads here: checking a dataset must not pay for it unless asked to.
    from transformers import AutoConfig, AutoProcessor

    quiet_transformers()
    source, local = resolve_base(model)
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local)
        processor = AutoProcessor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{model}: cannot open the model for token counting ({exc})") from None
    vision = config.vision_config
    per_frame = (vision.image_size // vision.patch_size) ** 2 + 1
    # The default feature strategy drops the CLS token of an image; video frames keep it.
    media = {"image": per_frame - 1, "video": per_frame * DEFAULT_FRAMES, "text": 0}
    tokenizer = processor.tokenizer
    return TokenBudget(
        count=lambda text: len(tokenizer(text, add_special_tokens=True)["input_ids"]),
        media_tokens=media,
        max_length=int(config.text_config.max_position_embeddings),
        model=model,
    )


def _file_hash(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _content_hash(sample: Sample, media_hash: Optional[str]) -> str:
    blob = "\x1f".join([sample.modality, sample.prompt.strip(), sample.answer.strip(),
                        media_hash or ""])
    return hashlib.sha1(blob.encode()).hexdigest()


STRIP_HEIGHT = 36


def write_frame_strip(sample_path: str, out: Path) -> Path:
    """The 8 frames Video-LLaVA sees, side by side and small, as a PNG the workbench draws.

    Raises MediaError when the video cannot be decoded.
    """
    from PIL import Image

    from engine.media import sample_frames

    sampled = sample_frames(sample_path, DEFAULT_FRAMES)
    frames = [Image.fromarray(frame) for frame in sampled.frames]
    width = max(1, round(frames[0].width * STRIP_HEIGHT / frames[0].height))
    strip = Image.new("RGB", (width * len(frames), STRIP_HEIGHT))
    for index, frame in enumerate(frames):
        strip.paste(frame.resize((width, STRIP_HEIGHT)), (index * width, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_suffix(".part.png")
    strip.save(partial)
    partial.replace(out)
    return out


def _check_media(
    sample: Sample, thumbs_dir: Path | None = None, roots: list[str] | None = None
) -> tuple[list[str], dict[str, Any], Optional[str]]:
    """Problems with a sample's media, what was learnt about it, and the file's hash. A media
    path that no longer resolves inside `roots` (its dataset's media roots; None: unknown) is
    refused before anything opens it."""
    from engine.media import load_image, probe_video, uniform_indices

    if sample.modality == "text":
        return [], {}, None
    if not sample.media_path:
        return [f"media: a {sample.modality} sample without a media file"], {}, None
    if roots is not None and (outside := outside_media_roots(sample.media_path, roots)):
        return [f"media: {outside}"], {}, None
    learnt: dict[str, Any] = {}
    try:
        if sample.modality == "video":
            info = probe_video(sample.media_path)
            if info.n_frames < DEFAULT_FRAMES:
                return [f"media: video too short: {DEFAULT_FRAMES} frames needed, it has "
                        f"{info.n_frames}"], {}, None
            learnt = {
                "n_frames": info.n_frames,
                "fps": info.fps,
                "frame_times": [round(i / info.fps, 3)
                                for i in uniform_indices(info.n_frames, DEFAULT_FRAMES)],
            }
            if thumbs_dir is not None:
                strip = write_frame_strip(sample.media_path, thumbs_dir / f"{sample.id}.png")
                learnt["frame_strip"] = str(strip)
        else:
            load_image(sample.media_path)
    except MediaError as exc:
        return [f"media: {exc}"], {}, None
    return [], learnt, _file_hash(sample.media_path)


def _chosen_datasets(all_sets: list[Dataset], names: list[str] | None) -> list[Dataset]:
    """The datasets named, else every training dataset. Raises KeyError naming unknown ones."""
    by_name = {d.name: d for d in all_sets}
    unknown = [name for name in names or [] if name not in by_name]
    if unknown:
        raise KeyError(f"no dataset named {', '.join(unknown)}")
    return [by_name[n] for n in names] if names else [d for d in all_sets if d.purpose == "train"]


@dataclass(frozen=True)
class FailedSample:
    """A sample the last check failed, as the check's listing shows it."""

    sample_id: int
    dataset: str
    external_id: str
    media_path: str | None
    reasons: list[str]


def failed_samples(
    db_engine: Engine, *, datasets: list[str] | None = None, limit: int | None = None
) -> tuple[list[FailedSample], int]:
    """The samples of `datasets` (every training dataset when None) that the last check failed,
    in dataset then id order, the first `limit` of them (all when None), and how many there are.

    Raises KeyError naming an unknown dataset.
    """
    found: list[FailedSample] = []
    total = 0
    with session_scope(db_engine) as session:
        for dataset in _chosen_datasets(queries.list_datasets(session), datasets):
            total += queries.count_samples(session, dataset_id=dataset.id,
                                           check_status="failed")
            room = None if limit is None else limit - len(found)
            if room is not None and room <= 0:
                continue
            found += [FailedSample(sample_id=s.id, dataset=dataset.name,
                                   external_id=s.external_id, media_path=s.media_path,
                                   reasons=list(s.check_reasons))
                      for s in queries.list_samples(session, dataset_id=dataset.id,
                                                    check_status="failed", limit=room)]
    return found, total


def check_samples(
    db_engine: Engine,
    *,
    datasets: list[str] | None = None,
    model: str | None = None,
    thumbs_dir: Path | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> CheckSummary:
    """Check the samples of `datasets` (all training datasets when None) and mark each one
    ok, warn or failed with its reasons; eval sets are read for leakage and checked too when
    named. With `thumbs_dir`, a strip of each video's sampled frames is saved there for the
    workbench. Returns counts by outcome and reason.

    Raises KeyError naming an unknown dataset; ModelLoadError when `model` cannot be opened.
    """
    with session_scope(db_engine) as session:
        all_sets = queries.list_datasets(session)
        chosen = _chosen_datasets(all_sets, datasets)
        eval_ids = {d.id for d in all_sets if d.purpose == "eval"}
        # Where each dataset's media may lie, as its import recorded: a link re-pointed since,
        # or a path written into the store, is refused, never opened.
        allowed = {d.id: dataset_media_roots(d.root, d.meta or {}) for d in all_sets}
        samples = [s for d in chosen for s in
                   queries.list_samples(session, dataset_id=d.id, limit=None)]
        eval_samples = [s for d in all_sets if d.id in eval_ids for s in
                        queries.list_samples(session, dataset_id=d.id, limit=None)]

    summary = CheckSummary()
    budget = token_budget(model) if model else None
    if budget is None:
        summary.notes.append("token budget not checked: pass --model DIR_OR_HUB_ID")

    total = len(samples)
    eval_media: dict[str, int] = {}
    eval_groups: dict[str, int] = {}
    eval_recipes: dict[str, int] = {}
    for sample in eval_samples:
        roots = allowed[sample.dataset_id]
        if roots is not None and sample.media_path and \
                outside_media_roots(sample.media_path, roots) is not None:
            continue
        if sample.media_path and Path(sample.media_path).is_file():
            eval_media.setdefault(_file_hash(sample.media_path), sample.id)
        if sample.group:
            eval_groups.setdefault(sample.group, sample.id)
        eval_recipes.setdefault(sample.answer.strip(), sample.id)

    seen: dict[str, int] = {}
    pending: list[queries.SampleCheck] = []
    for index, sample in enumerate(samples, 1):
        if should_stop and should_stop():
            summary.notes.append(f"stopped after {index - 1} of {total} samples")
            break
        failures, learnt, media_hash = _check_media(sample, thumbs_dir,
                                                    allowed[sample.dataset_id])
        warnings: list[str] = []
        if budget is not None:
            used = budget.count(sample.prompt + " " + sample.answer) + \
                budget.media_tokens.get(sample.modality, 0)
            if used > budget.max_length:
                failures.append(f"too long: {used} tokens with media, {budget.model} takes "
                                f"{budget.max_length}")
            learnt["tokens"] = used
        digest = _content_hash(sample, media_hash)
        if digest in seen:
            failures.append(f"duplicate: same content as sample {seen[digest]}")
        else:
            seen[digest] = sample.id
        if sample.dataset_id not in eval_ids:
            if media_hash and media_hash in eval_media:
                failures.append(f"leak: same media file as eval sample {eval_media[media_hash]}")
            elif sample.modality == "video" and sample.answer.strip() in eval_recipes:
                warnings.append(f"overlap: same recipe as eval sample "
                                f"{eval_recipes[sample.answer.strip()]}")
            elif sample.group and sample.group in eval_groups:
                warnings.append(f"overlap: same dish or recipe type ({sample.group}) as eval "
                                f"sample {eval_groups[sample.group]}")
        status = "failed" if failures else "warn" if warnings else "ok"
        reasons = failures + warnings
        pending.append(queries.SampleCheck(sample_id=sample.id, status=status, reasons=reasons,
                                           meta={**sample.meta, **learnt}, checked_at=utcnow()))
        if len(pending) >= 200:
            _write_marks(db_engine, pending)
        summary.checked += 1
        if status == "failed":
            summary.failed += 1
        elif status == "warn":
            summary.warned += 1
        else:
            summary.ok += 1
        for reason in reasons:
            summary.count(reason)
        if progress and (index % 50 == 0 or index == total):
            progress(index, total, f"{summary.failed} failed")
    _write_marks(db_engine, pending)
    return summary


def _write_marks(db_engine: Engine, pending: list[queries.SampleCheck]) -> None:
    """Store a batch of check results (a crash loses at most one batch, never half a row)."""
    if not pending:
        return
    with session_scope(db_engine) as session:
        queries.record_sample_checks(session, checks=pending)
    pending.clear()
