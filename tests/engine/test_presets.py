"""Presets as files, `KEY=VALUE` overrides, and TrainRequest: the command, the params, the checks."""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys

import pytest

from engine.model.tiny import MARKER, TINY_TRAINING
from engine.jobs.train_settings import PRESET_DIR, apply_overrides, load_preset, preset_names
from engine.jobs.requests import TrainRequest, parse_dataset_arg, parse_set_arg
from engine.jobs.train_settings import TrainConfig, TrainError


def test_the_paper_preset_is_video_llavas_lora_recipe():
    config = load_preset("paper")
    assert (config.lora_r, config.lora_alpha, config.lora_dropout) == (128, 256, 0.05)
    assert (config.learning_rate, config.projector_learning_rate) == (2e-4, 2e-5)
    assert (config.warmup_ratio, config.min_lr_ratio, config.weight_decay) == (0.03, 0.0, 0.0)
    assert (config.epochs, config.max_steps) == (1, None)
    # 16 samples per optimizer step, however many GPUs: batch x grad_accum x gpus.
    assert (config.batch_size, config.samples_per_step, config.grad_accum) == (4, 16, None)
    assert [config.batch_size * config.accumulation(g) * g for g in (1, 2, 4)] == [16, 16, 16]
    assert (config.max_length, config.num_frames) == (2048, 8)
    assert config.bf16 and config.attention == "sdpa" and config.fused_optimizer
    assert not config.gradient_checkpointing and config.group_by_length
    assert config.problems() == [] and config.problems(world_size=8) != []


def test_the_tiny_preset_holds_the_measured_cpu_settings():
    config = load_preset("tiny")
    for key, value in TINY_TRAINING.items():
        assert getattr(config, key) == value, key
    assert preset_names() == ["paper", "tiny"]


@pytest.mark.parametrize("name", ["paper", "tiny"])
def test_every_setting_is_in_the_preset_file_with_a_comment(name):
    lines = (PRESET_DIR / f"{name}.toml").read_text().splitlines()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "extra":
            continue
        line = next((l for l in lines if l.lstrip("# ").startswith(f"{f.name} =")), None)
        assert line is not None and "  # " in line, f"{name}.toml: {f.name} is not documented"


def test_a_copied_and_edited_preset_loads_and_a_broken_one_names_every_problem(tmp_path):
    text = (PRESET_DIR / "paper.toml").read_text().replace("lora_r = 128", "lora_r = 64")
    mine = tmp_path / "mine.toml"
    mine.write_text(text)
    assert load_preset(str(mine)).lora_r == 64
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace("batch_size = 4", 'batch_size = "four"')
                      .replace("lora_dropout = 0.05", "lora_dropout = 2.0") + "lora_rank = 8\n")
    with pytest.raises(TrainError) as caught:
        load_preset(str(broken))
    message = str(caught.value)
    assert str(broken) in message
    assert "lora_rank: unknown setting (did you mean lora_r?)" in message
    assert "batch_size: expected an integer, got 'four'" in message
    assert "lora_dropout: expected a number in [0, 1), got 2.0" in message
    with pytest.raises(TrainError, match="expected one of paper, tiny or a path"):
        load_preset("papre")


def test_overrides_parse_to_each_fields_type():
    config = apply_overrides(load_preset("paper"), {
        "lora_r": "64", "learning_rate": "1e-4", "gradient_checkpointing": "true",
        "max_length": "none", "attention": "eager", "max_steps": "30"})
    assert (config.lora_r, config.learning_rate, config.gradient_checkpointing) == (64, 1e-4, True)
    assert (config.max_length, config.attention, config.max_steps) == (None, "eager", 30)
    assert load_preset("paper").lora_r == 128  # the preset itself is untouched


def test_bad_overrides_are_one_message_with_key_expected_and_found():
    with pytest.raises(TrainError) as caught:
        apply_overrides(TrainConfig(), {"lora_rank": "3", "lora_dropout": "abc",
                                        "batch_size": "2.5", "bf16": "maybe"})
    message = str(caught.value)
    assert message.count("; ") == 3, message
    for part in ("lora_rank: unknown setting (did you mean lora_r?)",
                 "lora_dropout: expected a number, got 'abc'",
                 "batch_size: expected an integer, got '2.5'",
                 "bf16: expected true or false, got 'maybe'"):
        assert part in message
    with pytest.raises(TrainError, match="attention: expected sdpa or eager, got 'flash'"):
        apply_overrides(TrainConfig(), {"attention": "flash"})


def test_a_request_is_the_command_a_user_could_paste(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / MARKER).write_text("{}")
    request = TrainRequest(variant="soup v1", base=str(tmp_path / "tiny"),
                           datasets={"kitchen-video": 2, "kitchen-text": 0.5},
                           overrides={"lora_r": 64}, gpus=2)
    assert request.preset == "tiny"
    assert request.command() == [
        "ddft", "train", "--variant", "soup v1", "--base", str(tmp_path / "tiny"),
        "--preset", "tiny", "--dataset", "kitchen-video=2", "--dataset", "kitchen-text=0.5",
        "--set", "lora_r=64", "--gpus", "2"]
    assert shlex.split(request.shell()) == request.command()
    assert request.params() == {
        "variant": "soup v1", "base": str(tmp_path / "tiny"), "preset": "tiny",
        "datasets": {"kitchen-video": 2.0, "kitchen-text": 0.5},
        "overrides": {"lora_r": "64"}, "gpus": 2}
    assert TrainRequest.from_params(request.params()) == request
    assert TrainRequest(variant="v", base="LanguageBind/Video-LLaVA-7B-hf").preset == "paper"
    assert parse_dataset_arg("kitchen-video") == ("kitchen-video", 1.0)
    assert parse_dataset_arg("a=b=0.25") == ("a=b", 0.25)
    with pytest.raises(ValueError, match="NAME=WEIGHT"):
        parse_dataset_arg("kitchen=-1")
    assert parse_set_arg("max_length=none") == ("max_length", "none")


def test_a_request_lists_every_problem_against_the_store(ddft_store):
    from db import queries
    from db.store import session_scope

    with session_scope(ddft_store) as session:
        empty = queries.get_or_create_dataset(session, name="empty", modality="text")
        checked = queries.get_or_create_dataset(session, name="checked", modality="text")
        queries.add_samples(session, dataset_id=empty.id, samples=[
            {"external_id": "a", "modality": "text", "prompt": "q", "answer": "a",
             "included": False}])
        queries.add_samples(session, dataset_id=checked.id, samples=[
            {"external_id": "b", "modality": "text", "prompt": "q", "answer": "a"}])
        queries.create_variant(session, name="taken", base_model="/m")
        request = TrainRequest(variant="taken", base="/m", preset="paper",
                               datasets={"empty": 1, "ghost": 1, "checked": 1},
                               overrides={"lora_rank": "3", "batch_size": "x"})
        problems = request.problems(session)
        # A hub id is not looked up here; a local path must hold a model.
        ok = TrainRequest(variant="new", base="org/model",
                          datasets={"checked": 1}).problems(session)
    assert ok == []
    text = " | ".join(problems)
    for part in ("'taken' exists already", "dataset empty: no included samples",
                 "no dataset named ghost", "lora_rank: unknown setting",
                 "batch_size: expected an integer, got 'x'",
                 "base: /m: expected a model directory with config.json"):
        assert part in text, text
    assert not any("checked" in p for p in problems)


def test_the_request_module_imports_no_torch():
    code = "import sys, engine.jobs.requests; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {name.split(".")[0] for name in out.stdout.split()}
    assert not loaded & {"torch", "transformers", "peft", "accelerate", "textual"}
