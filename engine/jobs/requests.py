"""Job requests: one typed request per kind of job (what the CLI, the demo and the New run form
build), the job params it stores, every problem that would stop it, and the one registry of job
kinds with the handler that runs each.

Import-light (no torch, no transformers): the workbench imports it to show the exact command a
form will run and to check the form before submitting. Handlers are named as "module:function"
and imported only when a job runs.
"""

from __future__ import annotations

import shlex
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Protocol

from db.errors import UserError
from db.names import check_name
from engine.evaluation.frames import DEFAULT_FRAMES
from engine.jobs.train_settings import TINY_MARKER

if TYPE_CHECKING:
    from sqlmodel import Session

    from db.models import Dataset, ModelVariant

TINY_PRESET = "tiny"
PAPER_PRESET = "paper"
JUDGES = ("offline", "gpt")
# Which checkpoint of a run its model variant is made from.
VARIANT_CHECKPOINTS = ("final", "best")


class JobError(UserError, RuntimeError):
    """A job cannot be started, run or resumed as asked."""


class JobRequest(Protocol):
    """What every request type provides."""

    kind: ClassVar[str]

    def title(self) -> str: ...

    def params(self) -> dict[str, Any]: ...

    def problems(self, session: Session) -> list[str]: ...


def _build(cls: Any, params: dict[str, Any]) -> Any:
    """`cls` from job params: keys that are not fields (left by older versions) are ignored.
    Raises JobError naming every missing required field."""
    known = {f.name: f for f in fields(cls)}
    missing = [name for name, f in known.items()
               if f.default is MISSING and f.default_factory is MISSING and name not in params]
    if missing:
        raise JobError(f"{cls.kind} job params: expected {', '.join(missing)}, found none")
    return cls(**{key: value for key, value in params.items() if key in known})


def _whole(request: Any, name: str, low: int, high: int | None = None) -> list[str]:
    """A problem when field `name` is not a whole number in [low, high]."""
    value = getattr(request, name)
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low and (
        high is None or value <= high)
    if ok:
        return []
    expected = f"{low} to {high}" if high is not None else f"an integer >= {low}"
    return [f"{name}: expected {expected}, found {value!r}"]


# Model variants that jobs already queued will make (a grid's training runs): a request checked
# while they are named here may use them before they exist.
_PENDING_VARIANTS: ContextVar[frozenset[str]] = ContextVar("pending_variants",
                                                          default=frozenset())


@contextmanager
def expecting_variants(names: tuple[str, ...] | list[str]) -> Iterator[None]:
    """While inside, `find_named` takes the variants `names` as found: queued jobs will make
    them before the requests checked here run (their handlers look again then)."""
    token = _PENDING_VARIANTS.set(frozenset(names))
    try:
        yield
    finally:
        _PENDING_VARIANTS.reset(token)


@dataclass
class Found:
    """What `find_named` found: the rows, and a problem for each name the store lacks."""

    variant: ModelVariant | None = None
    eval_set: Dataset | None = None
    datasets: dict[str, Dataset] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def find_named(session: Session, *, variant: str | None = None, eval_set: str | None = None,
               datasets: tuple[str, ...] | list[str] = ()) -> Found:
    """The model variant, the eval set and the datasets of these names (the one lookup every
    request and handler uses), with one problem line per name that is not in the store."""
    from db import queries

    found = Found()
    if variant is not None:
        found.variant = queries.get_variant(session, name=variant)
        if found.variant is None and variant not in _PENDING_VARIANTS.get():
            found.problems.append(f"no model variant named {variant!r}; `ddft variants list` "
                                  "shows them")
    if eval_set is not None:
        found.eval_set = queries.get_dataset(session, name=eval_set)
        if found.eval_set is None:
            found.problems.append(f"no eval set named {eval_set!r}; `ddft data list` shows the "
                                  "datasets")
    for name in datasets:
        dataset = queries.get_dataset(session, name=name)
        if dataset is None:
            found.problems.append(f"no dataset named {name}; `ddft data list` shows the datasets")
        else:
            found.datasets[name] = dataset
    return found


def default_preset(base: str) -> str:
    """`tiny` for a directory holding ddft's tiny model, `paper` for anything else."""
    try:
        return TINY_PRESET if (Path(base).expanduser() / TINY_MARKER).is_file() else PAPER_PRESET
    except OSError:
        return PAPER_PRESET


def weight_text(weight: float) -> str:
    """A mixture weight as the command line writes it: 1, 0.5, 2.25."""
    weight = float(weight)
    return str(int(weight)) if weight.is_integer() else repr(weight)


def parse_dataset_arg(text: str) -> tuple[str, float]:
    """`NAME` or `NAME=WEIGHT` → (name, weight). Raises ValueError naming the argument when
    the weight is not a number > 0."""
    name, sep, weight = text.rpartition("=")
    if not sep:
        return text, 1.0
    try:
        value = float(weight)
    except ValueError:
        raise ValueError(f"--dataset {text}: expected NAME=WEIGHT with a number > 0, "
                         f"got weight {weight!r}") from None
    if not name or not value > 0 or value == float("inf"):
        raise ValueError(f"--dataset {text}: expected NAME=WEIGHT with a number > 0")
    return name, value


def parse_set_arg(text: str) -> tuple[str, str]:
    """`KEY=VALUE` → (key, value). Raises ValueError when there is no `=` or no key."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set {text}: expected KEY=VALUE")
    return key.strip(), value


@dataclass
class TrainRequest:
    """One LoRA run: the variant it makes, the base model, a preset, datasets with mixture
    weights, setting overrides, and how many GPUs."""

    kind: ClassVar[str] = "train"

    variant: str
    """The name of the model variant the run makes."""
    base: str
    """The base model: a hub id or a model directory."""
    preset: str = ""
    """A preset name or file; empty picks `tiny` for the tiny model and `paper` otherwise."""
    datasets: dict[str, float] = field(default_factory=dict)
    """Dataset name → mixture weight (1: every included sample once an epoch)."""
    overrides: dict[str, str] = field(default_factory=dict)
    """TrainConfig field → value as text, applied on top of the preset."""
    gpus: int = 1
    """GPUs to train on, data-parallel."""
    processes: int = 1
    """Data-parallel processes on the CPU (gloo): the multi-GPU path run without a GPU, for
    testing it (or a CPU-only machine). Not with `gpus` > 1."""
    variant_checkpoint: str = "final"
    """The checkpoint the variant is made from: final (the last), or best (the lowest
    validation loss)."""

    def __post_init__(self) -> None:
        if not self.preset:
            self.preset = default_preset(self.base)
        self.datasets = {name: float(w) for name, w in self.datasets.items()}
        self.overrides = {key: str(value) for key, value in self.overrides.items()}

    def command(self) -> list[str]:
        """The `ddft train ...` argv a user could paste to start the same run."""
        argv = ["ddft", "train", "--variant", self.variant, "--base", self.base,
                "--preset", self.preset]
        for name, weight in self.datasets.items():
            argv += ["--dataset", f"{name}={weight_text(weight)}"]
        for key, value in self.overrides.items():
            argv += ["--set", f"{key}={value}"]
        if self.gpus != 1:
            argv += ["--gpus", str(self.gpus)]
        if self.processes != 1:
            argv += ["--processes", str(self.processes)]
        if self.variant_checkpoint != "final":
            argv += ["--variant-checkpoint", self.variant_checkpoint]
        return argv

    def shell(self) -> str:
        """`command()` quoted for a POSIX shell."""
        return shlex.join(self.command())

    def params(self) -> dict[str, Any]:
        """The train job's params (what engine.jobs.handlers.train_task reads)."""
        params = {"variant": self.variant, "base": self.base, "preset": self.preset,
                  "datasets": dict(self.datasets), "overrides": dict(self.overrides),
                  "gpus": self.gpus}
        if self.processes != 1:
            params["processes"] = self.processes
        if self.variant_checkpoint != "final":
            params["variant_checkpoint"] = self.variant_checkpoint
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> TrainRequest:
        """The request behind a train job's params. Older params (datasets as a list of names,
        settings under `config`) read as weight 1 each and as overrides. Raises JobError when
        the variant or the base is missing."""
        missing = [key for key in ("variant", "base") if key not in params]
        if missing:
            raise JobError(f"train job params: expected {', '.join(missing)}, found none")
        datasets = params.get("datasets") or {}
        if isinstance(datasets, (list, tuple)):
            datasets = {name: 1.0 for name in datasets}
        overrides = {**(params.get("config") or {}), **(params.get("overrides") or {})}
        return cls(variant=params["variant"], base=params["base"],
                   preset=params.get("preset", ""), datasets=dict(datasets),
                   overrides=overrides, gpus=int(params.get("gpus", 1)),
                   processes=int(params.get("processes", 1)),
                   variant_checkpoint=str(params.get("variant_checkpoint", "final")))

    def title(self) -> str:
        return f"train {self.variant}"

    def problems(self, session: Session) -> list[str]:
        """Everything that would stop the run, checked against the store: a missing or taken
        variant name, an unknown preset, unknown datasets, datasets with no usable samples, bad
        weights, bad override keys or values, a bad GPU count."""
        from db import queries
        from engine.jobs.train_settings import load_preset, override_problems
        from engine.jobs.train_settings import TrainError

        out: list[str] = []
        bad_name = check_name("variant", self.variant)
        if bad_name:
            out.append(bad_name)
        elif queries.get_variant(session, name=self.variant) is not None:
            out.append(f"variant: a model variant named {self.variant!r} exists already")
        else:
            # A variant is registered when its run finishes: a queued or running run that will
            # register the same name takes it now, or both would train and one would collide.
            from db.models import JOB_ACTIVE

            taken = [job.id for job in queries.list_jobs(session, kind="train")
                     if job.status in JOB_ACTIVE and job.params.get("variant") == self.variant]
            if taken:
                out.append(f"variant: {self.variant!r} is being trained by job {taken[0]}")
        if not self.base.strip():
            out.append("base: a hub id or a model directory is needed")
        else:
            from engine.jobs.train_settings import resolve_base

            source, local = resolve_base(self.base)
            if local and not (Path(source) / "config.json").is_file():
                out.append(f"base: {self.base}: expected a model directory with config.json, "
                           "found none")
        if not self.datasets:
            out.append("datasets: expected at least one, got none")
        usable = 0
        found = find_named(session, datasets=list(self.datasets))
        out += found.problems
        for name, weight in self.datasets.items():
            if not weight > 0:
                out.append(f"dataset {name}: expected a weight > 0, got {weight:g}")
            dataset = found.datasets.get(name)
            if dataset is None:
                continue
            included = queries.count_samples(session, dataset_id=dataset.id, included=True)
            failed = queries.count_samples(session, dataset_id=dataset.id, included=True,
                                           check_status="failed")
            if included - failed <= 0:
                out.append(f"dataset {name}: no included samples that passed the check")
            usable += included - failed
        if self.datasets and not usable and len(self.datasets) > 1:
            out.append("datasets: no included samples in any of them")
        out += _whole(self, "gpus", 1)
        out += _whole(self, "processes", 1)
        if self.gpus != 1 and self.processes != 1:
            out.append(f"processes: data-parallel processes run on the CPU; give --processes or "
                       f"--gpus, not both (found {self.processes} and {self.gpus})")
        if self.variant_checkpoint not in VARIANT_CHECKPOINTS:
            out.append(f"variant_checkpoint: expected {' or '.join(VARIANT_CHECKPOINTS)}, "
                       f"found {self.variant_checkpoint!r}")
        try:
            config = load_preset(self.preset)
        except TrainError as exc:
            out.append(str(exc))
        else:
            _, bad = override_problems(config, self.overrides)
            out += bad
            if not bad:
                world = self.processes if self.processes != 1 else self.gpus
                out += [p for p in _config_with(config, self.overrides).problems(world)
                        if p.startswith("samples_per_step")]
        return out


def _config_with(config: Any, overrides: dict[str, str]) -> Any:
    from engine.jobs.train_settings import apply_overrides

    return apply_overrides(config, overrides)


@dataclass
class GenerateRequest:
    """Answers of one variant (greedy) for the included samples of an eval set; what is stored
    already is skipped."""

    kind: ClassVar[str] = "generate"
    task: ClassVar[str] = "recipe"
    """What is asked: the sample's own prompt (a recipe)."""

    variant: str
    """The model variant that answers."""
    eval_set: str
    """The dataset whose included samples it answers."""
    batch_size: int = 4
    """Generations per batch."""
    max_new_tokens: int = 256
    """Longest answer in tokens."""
    num_frames: int = DEFAULT_FRAMES
    """Frames sampled uniformly from each video."""
    include_failed: bool = False
    """Also try samples that `ddft data check` failed (left out, and named, by default)."""

    def title(self) -> str:
        return f"{self.kind} {self.variant}"

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GenerateRequest:
        """The request behind a job's params; an older generate job that asked for timestamps
        (`task: timestamps`) reads as a TimestampsRequest. Raises JobError for a missing
        field."""
        if cls is GenerateRequest and params.get("task") == TimestampsRequest.task:
            return TimestampsRequest.from_params(params)
        return _build(cls, params)

    def problems(self, session: Session) -> list[str]:
        """An unknown variant or eval set, and sizes that are not whole numbers >= 1."""
        found = find_named(session, variant=self.variant, eval_set=self.eval_set)
        return found.problems + [line for name in ("batch_size", "max_new_tokens", "num_frames")
                                 for line in _whole(self, name, 1)]


@dataclass
class TimestampsRequest(GenerateRequest):
    """Each step of a variant's recipe with start and end times, for the timestamp evaluation
    (engine.evaluation.timestamps.TIMESTAMP_PROMPT); stored as generations of task
    "timestamps", apart from the recipes."""

    kind: ClassVar[str] = "timestamps"
    task: ClassVar[str] = "timestamps"

    def problems(self, session: Session) -> list[str]:
        """GenerateRequest's, and an eval set without videos."""
        out = super().problems(session)
        dataset = find_named(session, eval_set=self.eval_set).eval_set
        if dataset is not None and dataset.modality != "video":
            out.append(f"{self.eval_set} holds {dataset.modality} samples; timestamps needs "
                       "videos with annotated steps, such as kitchen-eval or an imported "
                       "YouCook2 set")
        return out


@dataclass
class JudgeRequest:
    """Scores of stored generations on an eval set against their references; judged ones are
    skipped. The GPT judge's key comes from $OPENAI_API_KEY and is never part of a request."""

    kind: ClassVar[str] = "judge"

    eval_set: str
    """The dataset whose generations are judged."""
    variants: list[str] = field(default_factory=list)
    """Only these variants; empty: every variant."""
    judge: str = "offline"
    """offline (no network) or gpt (any OpenAI-compatible endpoint)."""
    protocol: str = "paper"
    """The GPT judge's protocol (engine.evaluation.judge_prompts.PROTOCOLS)."""
    model: str = "gpt-3.5-turbo"
    """The GPT judge's model."""
    base_url: str | None = None
    """The GPT judge's endpoint; None: $OPENAI_BASE_URL or OpenAI."""
    concurrency: int = 16
    """GPT requests in flight."""
    pair: list[str] | None = None
    """The pairwise protocol's two variants."""

    def title(self) -> str:
        if self.judge == "gpt":
            return f"judge {self.eval_set} ({self.model}, {self.protocol})"
        return f"judge {self.eval_set}"

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> JudgeRequest:
        """Raises JobError for a missing eval set."""
        request = _build(cls, params)
        request.variants = list(request.variants or [])
        request.pair = list(request.pair) if request.pair else None
        return request

    def problems(self, session: Session) -> list[str]:
        """An unknown eval set or variant, an unknown judge or protocol, a pairwise judge
        without two variants, a concurrency below 1."""
        from engine.evaluation.judge_prompts import PROTOCOLS

        named = [*self.variants, *(self.pair or [])]
        found = find_named(session, eval_set=self.eval_set)
        out = found.problems + [line for name in dict.fromkeys(named)
                                for line in find_named(session, variant=name).problems]
        if self.judge not in JUDGES:
            out.append(f"judge: expected {' or '.join(JUDGES)}, found {self.judge!r}")
        if self.judge == "gpt":
            if self.protocol not in PROTOCOLS:
                out.append(f"protocol: expected one of {', '.join(PROTOCOLS)}, found "
                           f"{self.protocol!r}")
            if self.protocol == "pairwise" and len(set(self.pair or [])) != 2:
                out.append("pair: the pairwise protocol needs two different variants "
                           f"(--pair A --pair B), found {len(self.pair or [])}")
            out += _whole(self, "concurrency", 1)
        return out


@dataclass
class GroundRequest:
    """For each generated step of a variant's recipes on an eval set, the sampled frame its
    tokens attend to most (teacher-forced attention); groundings with the same settings are
    skipped."""

    kind: ClassVar[str] = "ground"

    variant: str
    """The variant whose recipes are grounded."""
    eval_set: str
    """The video eval set its recipes answer."""
    layers: str = "late"
    """Decoder layers averaged: late (the later half), all, or a list like 12-31 or 0,4,8-11."""
    heads: str = "all"
    """Attention heads averaged: all or a list."""
    top_k: int = 1
    """Frames kept per step, most attended first."""
    include_failed: bool = False
    """Also ground samples that `ddft data check` failed (left out, and named, by default)."""

    def title(self) -> str:
        return f"ground {self.variant}"

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> GroundRequest:
        """Raises JobError for a missing variant or eval set."""
        return _build(cls, params)

    def problems(self, session: Session) -> list[str]:
        """An unknown variant or eval set, an eval set without videos, a variant without recipes
        there, malformed layer or head lists (and, for a local model, numbers beyond it), a
        top-k outside 1 to the frames sampled."""
        from db import queries
        from engine.evaluation.grounding import GroundingError, language_shape, parse_index_spec

        found = find_named(session, variant=self.variant, eval_set=self.eval_set)
        out = list(found.problems)
        dataset, variant = found.eval_set, found.variant
        if dataset is not None and dataset.modality != "video":
            out.append(f"{self.eval_set} holds {dataset.modality} samples; grounding needs "
                       "videos with annotated steps, such as kitchen-eval or an imported "
                       "YouCook2 set")
        elif dataset is not None and variant is not None and not queries.list_generations(
                session, variant_id=variant.id, dataset_id=dataset.id):
            command = shlex.join(["ddft", "generate", "--variant", self.variant,
                                  "--eval-set", self.eval_set])
            out.append(f"{self.variant} has no recipes for {self.eval_set} to ground: run "
                       f"`{command}` first")
        # A local model says how many layers and heads it has: check the numbers before any job.
        shape = language_shape(variant.base_model) if variant is not None else None
        for index, (name, spec) in enumerate((("layers", self.layers), ("heads", self.heads))):
            try:
                parse_index_spec(str(spec), shape[index] if shape else None, name)
            except GroundingError as exc:
                out.append(str(exc))
        out += _whole(self, "top_k", 1, DEFAULT_FRAMES)
        return out


@dataclass
class CheckRequest:
    """The data check before training (engine.checks): media that decodes, the token budget,
    duplicates, leakage into the eval sets. Failed samples are marked and left out of
    training."""

    kind: ClassVar[str] = "check"

    datasets: list[str] = field(default_factory=list)
    """The datasets checked; empty: every training dataset."""
    model: str | None = None
    """The model (directory or hub id) whose tokenizer and context the token budget uses; None
    leaves the budget unchecked."""

    def title(self) -> str:
        return "check " + (", ".join(self.datasets) if self.datasets else "training sets")

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> CheckRequest:
        request = _build(cls, params)
        request.datasets = list(request.datasets or [])
        return request

    def problems(self, session: Session) -> list[str]:
        """Unknown datasets."""
        return find_named(session, datasets=self.datasets).problems


@dataclass(frozen=True)
class JobKind:
    """A kind of job: the request it runs and its handler as "module:function", imported only
    when a job of the kind runs, so that importing engine.jobs never imports torch."""

    request: type
    handler: str


# The one registry of job kinds.
KINDS: dict[str, JobKind] = {
    "train": JobKind(TrainRequest, "engine.jobs.handlers:train_task"),
    "generate": JobKind(GenerateRequest, "engine.jobs.handlers:generate_task"),
    "timestamps": JobKind(TimestampsRequest, "engine.jobs.handlers:timestamps_task"),
    "judge": JobKind(JudgeRequest, "engine.jobs.handlers:judge_task"),
    "ground": JobKind(GroundRequest, "engine.jobs.handlers:ground_task"),
    "check": JobKind(CheckRequest, "engine.jobs.handlers:check_task"),
}
