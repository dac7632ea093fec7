"""SQLModel tables of the ddft store: datasets, samples, jobs, variants, outputs, judgments, ratings."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Modalities of a sample, as the paper splits its instruction data.
MODALITIES = ("image", "video", "text")
# What a dataset is for: training data, or an evaluation set with reference answers.
PURPOSES = ("train", "eval")
CHECK_STATUSES = ("unchecked", "ok", "warn", "failed")
# Job lifecycle. "interrupted" is set when a running job's process is found dead.
JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
JOB_ACTIVE = ("queued", "running")
# Kinds of job that need the accelerator: they wait in their host's device queue while it is busy.
DEVICE_KINDS = ("train", "generate", "timestamps", "ground")
# What a generation answers: the recipe (judged, in Table 1) or the steps with their times.
GENERATION_TASKS = ("recipe", "timestamps")


class Dataset(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    modality: str  # image | video | text (an eval set of videos is "video")
    purpose: str = "train"  # train | eval
    source: str = ""  # synthetic | foodx251 | tasty | youcook2 | llava | questions
    root: str = ""  # where the files lie on disk (absolute)
    description: str = ""
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Sample(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("dataset_id", "external_id", name="uq_sample_dataset_external"),
        Index("ix_sample_dataset_split", "dataset_id", "split"),
        Index("ix_sample_dataset_modality", "dataset_id", "modality"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    external_id: str  # the id the source dataset gives it (video id, image name, slug)
    modality: str = Field(index=True)
    split: str = "train"
    media_path: Optional[str] = None  # absolute path of the image or video, None for text
    # The instruction pair as Video-LLaVA trains on it; placeholders are added by the processor.
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    answer: str = Field(sa_column=Column(Text, nullable=False))
    # Group for clustered statistics (recipe type / dish): videos of one recipe are not independent.
    group: str = ""
    included: bool = Field(default=True, index=True)
    duration_s: Optional[float] = None
    # Set by `ddft data check`: unchecked | ok | warn | failed; failed samples are never trained on.
    check_status: str = Field(default="unchecked", index=True)
    check_reasons: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    checked_at: Optional[datetime] = None
    # Source-specific extras: step segments [{segment: [s, e], id, sentence}], structured recipe, ...
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Job(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    kind: str = Field(index=True)  # train | generate | judge | ...
    status: str = Field(default="queued", index=True)
    title: str = ""
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    pid: Optional[int] = None
    host: str = ""
    step: int = 0
    total: int = 0
    message: str = ""
    cancel_requested: bool = False
    error: Optional[str] = Field(default=None, sa_column=Column(Text, nullable=True))
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    log_path: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: Optional[datetime] = None
    heartbeat_at: Optional[datetime] = None
    finished_at: Optional[datetime] = None
    # The queue: the host whose device queue the job waits in (it runs there), how many device
    # slots it takes while running (0: it never waits for the device), when it joined the queue
    # (its place; a resumed job joins at the back), the jobs that must succeed before it starts,
    # and the workspace its process runs in.
    queue: str = Field(default="", index=True)
    devices: int = 0
    queued_at: Optional[datetime] = None
    after: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    workspace: str = ""


class Metric(SQLModel, table=True):
    """One scalar a job reported at a step (loss, learning rate, samples/s, ...)."""

    __table_args__ = (Index("ix_metric_job_name_step", "job_id", "name", "step"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id")
    step: int
    name: str
    value: float
    created_at: datetime = Field(default_factory=utcnow)


class Checkpoint(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("job_id", "step", name="uq_checkpoint_job_step"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="job.id", index=True)
    step: int
    path: str
    final: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class ModelVariant(SQLModel, table=True):
    """A model that can generate: a base model, or a base plus a LoRA adapter."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    base_model: str  # hub id or local directory
    adapter_path: Optional[str] = None
    job_id: Optional[int] = Field(default=None, foreign_key="job.id")
    checkpoint_id: Optional[int] = Field(default=None, foreign_key="checkpoint.id")
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class Generation(SQLModel, table=True):
    """A text a variant produced for a sample; append-only, keyed by what produced it."""

    __table_args__ = (
        UniqueConstraint("variant_id", "sample_id", "params_key", name="uq_generation_key"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    variant_id: int = Field(foreign_key="modelvariant.id", index=True)
    sample_id: int = Field(foreign_key="sample.id", index=True)
    job_id: Optional[int] = Field(default=None, foreign_key="job.id")
    prompt: str = Field(sa_column=Column(Text, nullable=False))
    text: str = Field(sa_column=Column(Text, nullable=False))
    # Hash of prompt + decoding parameters: a changed setting makes a new row.
    params_key: str
    decoding: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    frame_indices: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    frame_times: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    n_tokens: int = 0
    # What was asked: "recipe" (the paper's task, judged and reported) or "timestamps" (each
    # step with its start and end time, for the timestamp evaluation).
    task: str = Field(default="recipe", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Judgment(SQLModel, table=True):
    """A judge's score of one generation; append-only, keyed by judge, protocol and prompt version."""

    __table_args__ = (
        UniqueConstraint(
            "generation_id", "judge", "protocol", "prompt_version", name="uq_judgment_key"
        ),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    generation_id: int = Field(foreign_key="generation.id", index=True)
    judge: str  # "offline" or the judge model's name, e.g. gpt-3.5-turbo
    protocol: str  # paper | upstream | two-stage | pairwise | offline
    prompt_version: str
    score: Optional[float] = None  # None when the reply could not be parsed
    verdict: str = ""  # yes | no | unparsable
    raw: str = Field(default="", sa_column=Column(Text, nullable=False))
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    job_id: Optional[int] = Field(default=None, foreign_key="job.id")
    created_at: datetime = Field(default_factory=utcnow)


class Rater(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    created_at: datetime = Field(default_factory=utcnow)


# How people rate in a campaign: one generation against the reference on the judge's 1-5 scale
# (ingredients, steps, overall), or which of two generations is closer to the reference.
CAMPAIGN_MODES = ("single", "pairwise")
RATING_FIELDS = ("ingredients", "steps", "overall")
PAIRWISE_CHOICES = ("left", "right", "tie", "both-bad")


class Campaign(SQLModel, table=True):
    """A blind rating campaign over the generations of two or more variants on one eval set.

    `seed` fixes each rater's item order and left/right placement; which variant wrote what is
    the blinding key, read only by reports and exports.
    """

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    mode: str  # single | pairwise
    dataset_id: int = Field(foreign_key="dataset.id", index=True)
    variant_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    raters_per_item: int = 1  # k: how many raters each item is meant for
    seed: int = 0
    description: str = ""
    created_at: datetime = Field(default_factory=utcnow)


class CampaignItem(SQLModel, table=True):
    """One thing to rate: a generation (single) or a pair of generations of one sample (pairwise)."""

    __table_args__ = (UniqueConstraint("campaign_id", "position", name="uq_campaign_item_position"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    position: int  # canonical order; each rater sees a shuffled order
    sample_id: int = Field(foreign_key="sample.id", index=True)
    generation_id: int = Field(foreign_key="generation.id", index=True)
    other_generation_id: Optional[int] = Field(default=None, foreign_key="generation.id")


class Assignment(SQLModel, table=True):
    """An item handed to a rater: claimed when first shown, done once rated or skipped."""

    __table_args__ = (UniqueConstraint("item_id", "rater_id", name="uq_assignment_item_rater"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    item_id: int = Field(foreign_key="campaignitem.id", index=True)
    rater_id: int = Field(foreign_key="rater.id", index=True)
    swapped: bool = False  # pairwise: the item's other generation is shown on the left
    state: str = Field(default="open", index=True)  # open | rated | skipped
    assigned_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Rating(SQLModel, table=True):
    """A person's blind rating of one campaign item, written the moment it is given."""

    __table_args__ = (UniqueConstraint("item_id", "rater_id", name="uq_rating_item_rater"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    item_id: int = Field(foreign_key="campaignitem.id", index=True)
    rater_id: int = Field(foreign_key="rater.id", index=True)
    # single: the rated generation; pairwise: the generation shown on the left
    generation_id: int = Field(foreign_key="generation.id", index=True)
    other_generation_id: Optional[int] = Field(default=None, foreign_key="generation.id")  # right
    scores: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    choice: str = ""  # pairwise: left | right | tie | both-bad, as the rater saw the sides
    seconds: float = 0.0  # time from the item being shown to the rating being saved
    created_at: datetime = Field(default_factory=utcnow)


class Grounding(SQLModel, table=True):
    """Which sampled frames each generated step attends to most; keyed by the capture settings."""

    __table_args__ = (
        UniqueConstraint("generation_id", "params_key", name="uq_grounding_key"),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    generation_id: int = Field(foreign_key="generation.id", index=True)
    params_key: str  # hash of the layers, heads and top-k used
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # One entry per generated step: {"index", "text", "frames", "frame_indices", "times", "weights"}
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    job_id: Optional[int] = Field(default=None, foreign_key="job.id")
    created_at: datetime = Field(default_factory=utcnow)


# What a per-sample failure was doing: generating a recipe or timed steps, or grounding a recipe.
FAILURE_TASKS = ("recipe", "timestamps", "grounding")


class GenerationFailure(SQLModel, table=True):
    """A sample a job could not answer or ground (an unreadable or too-short video, ...), with
    a one-line reason; the rest of the job went on. A later success of the same variant,
    sample and task supersedes it."""

    __table_args__ = (Index("ix_generationfailure_variant_task", "variant_id", "task"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    variant_id: int = Field(foreign_key="modelvariant.id")
    sample_id: int = Field(foreign_key="sample.id", index=True)
    job_id: Optional[int] = Field(default=None, foreign_key="job.id", index=True)
    task: str  # one of FAILURE_TASKS
    reason: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class Setting(SQLModel, table=True):
    """One setting of the store shared by every process using it (e.g. `device_slots`: how many
    device jobs may run at once on a host)."""

    name: str = Field(primary_key=True)
    value: str = ""
    updated_at: datetime = Field(default_factory=utcnow)


class Grid(SQLModel, table=True):
    """A modality ablation grid: one training run per cell (a subset of the training sets'
    modalities, and values of preset fields), each followed by generation on one eval set and
    judging, plus the base model's generation once."""

    id: Optional[int] = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    base: str  # hub id or model directory
    base_variant: str  # the model variant of the untuned base
    eval_set: str
    preset: str = ""
    # Training dataset name -> its modality (image | video | text), as given.
    datasets: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Preset overrides every cell shares (field -> value as text).
    overrides: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The grid's axes: "modalities" -> list of subsets, and preset field -> list of values.
    axes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # The judges each cell's generations get: [{"judge", "protocol", "model", "base_url"}].
    judges: list[dict[str, Any]] = Field(default_factory=list,
                                         sa_column=Column(JSON, nullable=False))
    gpus: int = 1
    best_checkpoint: bool = False  # generate with each run's best checkpoint, not its last
    generation: dict[str, Any] = Field(default_factory=dict,
                                       sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class GridCell(SQLModel, table=True):
    """One cell of a grid: the variant it trains (none for the base row), the modalities and
    settings it trains with, and the jobs that make it."""

    __table_args__ = (UniqueConstraint("grid_id", "position", name="uq_gridcell_position"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    grid_id: int = Field(foreign_key="grid.id", index=True)
    position: int  # 0 is the base row
    variant: str
    is_base: bool = False
    modalities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    settings: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    train_job_id: Optional[int] = Field(default=None, foreign_key="job.id")
    generate_job_id: Optional[int] = Field(default=None, foreign_key="job.id")
    judge_job_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
