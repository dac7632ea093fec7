"""Opening Video-LLaVA models and processors, attaching LoRA, and the documented prompt format."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from db.errors import UserError
from engine.jobs.train_settings import resolve_base
from engine.model.timeaware import (
    ENCODER_NAME,
    TIME_FILE,
    TimeEncoderError,
    TimeSettings,
    read_time_settings,
)

if TYPE_CHECKING:  # only for annotations: importing torch here would slow `ddft --help`
    import torch
    from peft import PeftModel

MODALITIES = ("video", "image", "text")


class ModelLoadError(UserError, RuntimeError):
    """A model or adapter cannot be opened: a missing directory, or one that is not a model."""


@dataclass
class LoadedModel:
    """A model ready for inference or training, with the processor that prepares its inputs."""

    model: Any  # VideoLlavaForConditionalGeneration, or a PeftModel wrapping one
    processor: Any  # VideoLlavaProcessor, tokenizer padding on the left
    device: str
    dtype: torch.dtype
    # How the model was trained to know each frame's time (engine.model.timeaware): generation,
    # timestamps and grounding give it the same. Both off: plain Video-LLaVA.
    time: TimeSettings = field(default_factory=TimeSettings)

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer


def format_prompt(modality: str, prompt: str) -> str:
    """Video-LLaVA's single-turn conversation: `USER: <video>\\n{prompt} ASSISTANT:`.

    Images use `<image>` and text-only prompts have no placeholder. Raises ValueError for any
    other modality.
    """
    if modality == "video":
        return f"USER: <video>\n{prompt} ASSISTANT:"
    if modality == "image":
        return f"USER: <image>\n{prompt} ASSISTANT:"
    if modality == "text":
        return f"USER: {prompt} ASSISTANT:"
    raise ValueError(
        f"modality must be one of {', '.join(MODALITIES)}, got {modality!r}"
    )


def default_device() -> str:
    """`cuda` when a GPU is visible, else `cpu`."""
    import torch  # deferred: see the module's import note

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_transformers() -> None:
    """Silence transformers' per-load progress bars and notices: ddft shows its own progress,
    and a job's log should hold what the job did, not weight-loading chatter. huggingface_hub's
    download bars stay on (unless HF_HUB_DISABLE_PROGRESS_BARS says otherwise)."""
    import warnings

    from huggingface_hub.utils import enable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    # transformers' switch turns huggingface_hub's bars off too, and they are the only sign of
    # life while a hub model's gigabytes download. Turned back on here; huggingface_hub itself
    # keeps them off when the user's HF_HUB_DISABLE_PROGRESS_BARS asks, and warns that it did.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enable_progress_bars()


def load_model(
    name_or_path: str, *, device: str | None = None, dtype: torch.dtype | None = None
) -> LoadedModel:
    """Open a Video-LLaVA model and its processor from a local directory or a hub id.

    Defaults: the GPU when there is one, bfloat16 on CUDA and float32 on CPU. The tokenizer pads
    on the left, as batched generation needs. A local directory is opened without any network
    access. Raises ModelLoadError naming the path when it is missing or not a Video-LLaVA model.
    """
    # torch/transformers are imported here: they take seconds, and the CLI and TUI must not wait.
    import torch
    from transformers import VideoLlavaForConditionalGeneration, VideoLlavaProcessor

    quiet_transformers()
    source, local = resolve_base(name_or_path)
    if local:
        folder = Path(source)
        if not folder.is_dir():
            raise ModelLoadError(f"{folder}: model directory not found")
        missing = [
            n
            for n in ("config.json", "processor_config.json")
            if not (folder / n).is_file()
        ]
        if (
            folder / "preprocessor_config.json"
        ).is_file() and "processor_config.json" in missing:
            missing.remove(
                "processor_config.json"
            )  # older checkpoints keep processor keys there
        if missing:
            raise ModelLoadError(
                f"{folder}: not a Video-LLaVA model directory (missing {', '.join(missing)})"
            )
    device = device or default_device()
    if dtype is None:
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        model = VideoLlavaForConditionalGeneration.from_pretrained(
            source, dtype=dtype, local_files_only=local
        )
        processor = VideoLlavaProcessor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError, KeyError) as exc:
        first = (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        )
        raise ModelLoadError(
            f"{source}: cannot load a Video-LLaVA model ({first})"
        ) from exc
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        # Llama tokenizers ship without one; the 7B conversion added <pad>, older copies may not.
        processor.tokenizer.pad_token = processor.tokenizer.unk_token
    time = TimeSettings()
    if local:
        # A merged ddft model trained with frame times keeps its encoder beside the weights.
        try:
            time = read_time_settings(source)
            if time.embedding:
                from engine.model.timeaware import load_merged_encoder

                load_merged_encoder(model, source, time)
        except TimeEncoderError as exc:
            raise ModelLoadError(str(exc)) from None
    model.to(device)
    model.eval()
    return LoadedModel(model=model, processor=processor, device=device, dtype=dtype, time=time)


def language_model_linear_names(model: Any) -> list[str]:
    """Full names of every nn.Linear inside the language model (not the vision tower, not the
    projector, not the output head)."""
    import torch  # deferred: see the module's import note

    return [
        name
        for name, module in model.named_modules()
        if ".language_model." in f".{name}." and isinstance(module, torch.nn.Linear)
    ]


def attach_lora(model: Any, *, r: int, alpha: int, dropout: float) -> PeftModel:
    """Wrap `model` with LoRA adapters on every linear layer of its language model.

    The multimodal projector is trained in full (peft `modules_to_save`, so it is saved with the
    adapter), and so is a frame-time encoder when the model has one
    (engine.model.timeaware.attach_time_encoder); the vision tower and everything else stay
    frozen. Raises ValueError when the model has no language-model linear layers (not a
    Video-LLaVA model).
    """
    from engine.model.timeaware import has_time_encoder

    # peft is imported here for the same reason as torch above.
    from peft import LoraConfig, get_peft_model

    targets = language_model_linear_names(model)
    if not targets:
        raise ValueError(
            f"{type(model).__name__} has no language_model linear layers for LoRA"
        )
    leaves = sorted({name.rsplit(".", 1)[-1] for name in targets})
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        # A regex over full module names rather than bare leaf names: the vision tower has
        # layers called q_proj/k_proj too, and they must stay untouched.
        target_modules=rf".*\.language_model\..*\.({'|'.join(leaves)})",
        modules_to_save=["multi_modal_projector",
                         *([ENCODER_NAME] if has_time_encoder(model) else [])],
        bias="none",
    )
    with warnings.catch_warnings():
        # peft 0.21 reads a transformers attribute deprecated in v5; the warning means nothing here.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        return get_peft_model(model, config)


def _saves_time_encoder(folder: Path) -> bool:
    """Whether an adapter folder's peft config trains a frame-time encoder beside the LoRA."""
    import json

    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError):
        return False  # peft says what is wrong with it
    return ENCODER_NAME in (config.get("modules_to_save") or []) if isinstance(config, dict) \
        else False


def load_variant(base: str, adapter_path: str | None, **kw: Any) -> LoadedModel:
    """The base model with a trained LoRA adapter on top, ready for generation.

    `adapter_path` None gives the base model alone. `kw` goes to `load_model` (device, dtype).
    Raises ModelLoadError when the base or the adapter cannot be opened.
    """
    loaded = load_model(base, **kw)
    if adapter_path is None:
        return loaded
    from peft import PeftModel  # deferred: see the module's import note

    folder = Path(adapter_path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ModelLoadError(
            f"{folder}: not a LoRA adapter directory (no adapter_config.json)"
        )
    try:
        time = read_time_settings(folder)
    except TimeEncoderError as exc:
        raise ModelLoadError(str(exc)) from None
    if not time.embedding and _saves_time_encoder(folder):
        # peft would load the adapter without the encoder, silently: the frames' times lost.
        raise ModelLoadError(f"{folder}: the adapter holds a frame-time encoder but no "
                             f"{TIME_FILE} saying how it was trained; copy that file from the "
                             "run's checkpoint folder")
    if time.embedding:
        # The encoder's trained weights are in the adapter (peft's modules_to_save); peft
        # loads them into the module it finds under that name.
        from engine.model.timeaware import attach_time_encoder

        attach_time_encoder(loaded.model, time)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
            model = PeftModel.from_pretrained(
                loaded.model, str(folder), is_trainable=False
            )
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = (
            str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        )
        raise ModelLoadError(
            f"{folder}: cannot load the adapter onto {base} ({first})"
        ) from exc
    model.to(loaded.device)
    model.eval()
    loaded.model = model
    loaded.time = time
    return loaded
