"""The tiny offline Video-LLaVA: a local tokenizer, a small config and random weights, saved as a model directory."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from db.errors import UserError
from engine.jobs.train_settings import TINY_MARKER

MARKER = TINY_MARKER
# Bump when the recipe below changes, so an old directory is rebuilt rather than reused.
RECIPE_VERSION = 1

SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<video>"]
VOCAB_SIZE = 2048
FRAME_SIZE = 56
PATCH_SIZE = 14
NUM_FRAMES = 8

# Video-LLaVA's own chat template, reduced to what ddft uses: a user turn holding media
# placeholders then text, and "ASSISTANT:" as the generation prompt. It renders exactly
# `engine.model.loading.format_prompt`.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Sizes chosen so that one CPU training step on a batch of videos takes tens of milliseconds
# while the language model still has room to learn a dozen recipes.
VISION = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": FRAME_SIZE,
    "patch_size": PATCH_SIZE,
    "projection_dim": 64,
}
TEXT = {
    "hidden_size": 128,
    "intermediate_size": 344,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 1024,
    "rms_norm_eps": 1e-5,
}

# Training settings measured to work on this model (engine.train.TrainConfig fields): on the
# demo kitchen, 700 steps of batch 4 take about a minute on two CPU cores and turn the
# random base into one that writes recipe-shaped text. A random-init model needs a high LR.
TINY_TRAINING = {
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "learning_rate": 3e-3,
    "projector_learning_rate": 3e-3,
    "batch_size": 4,
    "max_steps": 700,
    "warmup_ratio": 0.05,
    # Measured on the demo kitchen: with length grouping the tuned model matched 0 of 12
    # held-out recipes (average 1.85), without it 3 of 12 (2.50). Batches that mix short and
    # long answers suit this model's few hundred steps better.
    "group_by_length": False,
}

# Standard deviation of the output head's random weights; see _write_model for why not 0.02.
LM_HEAD_STD = 0.15


class TinyModelError(UserError, RuntimeError):
    """The tiny model cannot be built (an empty corpus, an unwritable directory)."""


def corpus_digest(texts: list[str]) -> str:
    """A sha256 over the corpus texts in order, used to tell whether a built model still fits."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


def build_tiny_model(out_dir: Path, corpus: Iterable[str], *, seed: int = 0) -> Path:
    """Build (or reuse) the tiny Video-LLaVA in `out_dir` and return `out_dir`.

    The tokenizer is trained on `corpus`; weights are random from `seed`. When `out_dir` already
    holds a tiny model built from the same corpus and seed, it is reused untouched. The model is
    built in a temporary folder next to `out_dir` and renamed into place, so an interrupted build
    never leaves a directory that looks complete.

    Raises TinyModelError when the corpus is empty, OSError when `out_dir` cannot be written.
    """
    out_dir = Path(out_dir)
    texts = [t for t in corpus if t]
    if not texts:
        raise TinyModelError("cannot build the tiny model: the corpus is empty")
    marker = {
        "recipe_version": RECIPE_VERSION,
        "seed": seed,
        "corpus_sha256": corpus_digest(texts),
        "vocab_size": VOCAB_SIZE,
        "text": TEXT,
        "vision": VISION,
        "lm_head_std": LM_HEAD_STD,
    }
    existing = out_dir / MARKER
    if existing.is_file():
        try:
            if json.loads(existing.read_text()) == json.loads(json.dumps(marker)):
                return out_dir
        except (OSError, ValueError):
            pass  # an unreadable marker means the directory is rebuilt

    from engine.model.loading import quiet_transformers

    quiet_transformers()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_model(tmp, texts, seed)
        # The marker is written last: a directory without it is never taken as complete.
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if out_dir.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent)
            )
            os.replace(out_dir, old / "model")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _train_tokenizer(texts: list[str]):
    # tokenizers and transformers are imported here so that importing engine.model stays cheap.
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    # Byte-level BPE round-trips any text exactly, newlines and runs of spaces included.
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    bos = tokenizer.token_to_id("<s>")
    # Llama tokenizers start every sequence with <s>; ddft's prompts assume the same.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>", "video_token": "<video>"},
        padding_side="left",
        model_max_length=TEXT["max_position_embeddings"],
    )


def _write_model(folder: Path, texts: list[str], seed: int) -> None:
    # torch and transformers are imported here so that importing engine.model stays cheap.
    import torch
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        VideoLlavaConfig,
        VideoLlavaForConditionalGeneration,
        VideoLlavaImageProcessor,
        VideoLlavaProcessor,
        VideoLlavaVideoProcessor,
    )

    tokenizer = _train_tokenizer(texts)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    vocab_size = len(tokenizer)
    tokens_per_frame = (FRAME_SIZE // PATCH_SIZE) ** 2 + 1  # patches + CLS
    text_config = LlamaConfig(
        vocab_size=vocab_size,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        tie_word_embeddings=False,
        **TEXT,
    )
    config = VideoLlavaConfig(
        vision_config=CLIPVisionConfig(**VISION),
        text_config=text_config,
        image_token_index=ids["<image>"],
        video_token_index=ids["<video>"],
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=tokens_per_frame - 1,
        video_seq_length=tokens_per_frame * NUM_FRAMES,
    )
    config.pad_token_id = ids["<pad>"]

    torch.manual_seed(seed)
    model = VideoLlavaForConditionalGeneration(config)
    with torch.no_grad():
        # The usual 0.02 init caps a 128-wide head's logits near 2.5, so a frozen random head
        # would keep even a perfectly tuned LoRA close to uniform. A pretrained head has far
        # larger rows; this scale lets the adapter reach confident predictions.
        model.lm_head.weight.normal_(0.0, LM_HEAD_STD)
    model.generation_config.bos_token_id = ids["<s>"]
    model.generation_config.eos_token_id = ids["</s>"]
    model.generation_config.pad_token_id = ids["<pad>"]
    model.save_pretrained(folder)

    frame = {
        "size": {"shortest_edge": FRAME_SIZE},
        "crop_size": {"height": FRAME_SIZE, "width": FRAME_SIZE},
    }
    processor = VideoLlavaProcessor(
        image_processor=VideoLlavaImageProcessor(**frame),
        video_processor=VideoLlavaVideoProcessor(**frame),
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(folder)
