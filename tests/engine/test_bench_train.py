"""`ddft bench train` on the CPU: it times the product's own step (the loss of each benchmark step is
train_lora's), the smoke grid, the MFU arithmetic, the 7B shape, import hygiene."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from engine.bench_train import (
    FLOP_CONVENTION,
    VIDEO_LLAVA_7B,
    BenchTrainError,
    ConfigResult,
    SampleLayout,
    base_config,
    bench_train,
    build_config,
    build_model,
    build_processor,
    count_parameters,
    detect_peak_tflops,
    flops_per_step,
    grid_config,
    model_flops_utilization,
    parse_batch_sizes,
    parse_overrides,
    parse_switches,
    synthetic_examples,
    time_configuration,
    video_step_parameters,
)
from engine.train import TrainExample

RECIPE = "Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\nSteps:\n1. Simmer the tomatoes."


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # The smoke steps are tiny: with tests running beside them, OpenMP threads waiting on each
    # other made them ten times slower than one thread.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def smoke_result(one_torch_thread):
    return bench_train(batch_sizes=[1, 2], checkpointing=[True, False], steps=1, warmup=0,
                       smoke=True)


def test_the_cpu_smoke_grid_times_every_configuration(smoke_result):
    assert smoke_result.smoke
    assert [(c.checkpointing, c.batch_size) for c in smoke_result.configs] == [
        (True, 1), (True, 2), (False, 1), (False, 2)]
    for config in smoke_result.configs:
        assert config.status == "ok"
        assert not config.bf16  # bf16 is a CUDA setting
        assert config.train_config["batch_size"] == config.batch_size
        assert config.train_config["gradient_checkpointing"] == config.checkpointing
        assert config.samples_per_step == config.batch_size  # one micro-batch per step
        assert config.tokens_per_step == config.batch_size * smoke_result.facts["seq_len"]
        assert config.tokens_per_s > 0 and config.samples_per_s > 0
        assert config.mfu is None and config.peak_memory_bytes is None
        assert math.isfinite(config.loss) and config.loss > 0


def test_the_smoke_report_says_what_it_is_and_how_it_counts(smoke_result):
    lines = smoke_result.lines()
    text = "\n".join(lines)
    assert lines[0].startswith("SMOKE TEST")
    assert FLOP_CONVENTION in lines
    assert "FLOPs/step = 4 × N_params × tokens" in FLOP_CONVENTION
    assert "MFU omitted" in text
    assert "r=128, alpha=256" in text
    # The table comes last but for the notes, one row per configuration.
    table = smoke_result.table()
    assert table[0].split()[:3] == ["ckpt", "bf16", "batch"]
    assert len(table) == 2 + len(smoke_result.configs)
    assert lines[-len(smoke_result.notes) - len(table):-len(smoke_result.notes)] == table
    # 8 frames of (56/14)² + 1 tokens, as the processor expands <video>.
    assert smoke_result.facts["video_tokens"] == 8 * 17
    assert smoke_result.facts["seq_len"] == 8 * 17 + 12 + 20
    assert smoke_result.facts["answer_tokens"] == 20
    assert smoke_result.facts["trainable"]["lora"]["float32"] > 0
    assert "engine.train.optimizer_step" in text and "preset paper" in text


def test_out_of_memory_as_the_product_detects_it_is_reported_and_the_grid_goes_on(
        monkeypatch):
    import engine.train as product

    class Exhausted(Exception):
        """An allocator failure only the product's detection knows."""

    real_step, real_check = product.optimizer_step, product.is_out_of_memory

    def step_that_runs_out(training, micro_batches):
        batch = len(micro_batches[0][0])
        base = training.model.get_base_model()
        # transformers 5.2x renamed the flag; older releases have only the old name.
        checkpointing = getattr(base, "is_activation_checkpointing", None)
        if checkpointing is None:
            checkpointing = base.is_gradient_checkpointing
        if not checkpointing and batch >= 2:
            raise Exhausted("the device is full")
        return real_step(training, micro_batches)

    monkeypatch.setattr(product, "optimizer_step", step_that_runs_out)
    monkeypatch.setattr(product, "is_out_of_memory",
                        lambda exc: isinstance(exc, Exhausted) or real_check(exc))
    result = bench_train(batch_sizes=[2, 1, 4], checkpointing=[False, True], steps=1, warmup=0,
                         smoke=True)
    assert [(c.checkpointing, c.batch_size, c.status) for c in result.configs] == [
        (False, 2, "out of memory"), (False, 1, "ok"),
        (False, 4, "skipped: batch 2 ran out of memory"),
        (True, 2, "ok"), (True, 1, "ok"), (True, 4, "ok")]
    assert result.configs[0].tokens_per_s is None
    assert "out of memory" in result.table()[2]

    # Anything else the step raises is not taken for a full device.
    monkeypatch.setattr(product, "is_out_of_memory", real_check)
    with pytest.raises(Exhausted):
        bench_train(batch_sizes=[2], checkpointing=[False], steps=1, warmup=0, smoke=True)

    spent = bench_train(batch_sizes=[1], checkpointing=[True], steps=1, warmup=0, smoke=True,
                        budget_s=0)
    assert spent.configs[0].status == "skipped: time budget of 0 s spent"


def test_mfu_matches_hand_arithmetic():
    assert flops_per_step(7_000_000_000, 2_300) == 64_400_000_000_000
    # 4 × 7e9 × 2300 FLOPs in 0.25 s against 989 TFLOP/s: 2.576e14 / 9.89e14.
    assert model_flops_utilization(6.44e13, 0.25, 989.0) == pytest.approx(0.260465, rel=1e-5)
    # Video-LLaVA-7B, batch 2 of 2,300 tokens, median step 0.5 s on an H100 SXM.
    n = 6_607_605_760 + 131_334_144 + 303_179_776 + 20_979_712
    config = ConfigResult(checkpointing=False, batch_size=2, bf16=True,
                          step_seconds=[0.7, 0.5, 0.4], tokens_per_step=4_600, samples_per_step=2,
                          flops_per_step=flops_per_step(n, 4_600), peak_tflops=989.0)
    assert config.flops_per_step == 129_961_028_812_800
    assert config.median_s == 0.5
    assert config.tokens_per_s == 9_200 and config.samples_per_s == 4
    assert config.mfu == pytest.approx(0.262813, rel=1e-5)
    assert ConfigResult(checkpointing=True, batch_size=4, bf16=False,
                        status="out of memory").mfu is None


def test_the_peak_comes_from_the_device_name():
    assert detect_peak_tflops("NVIDIA H100 80GB HBM3")[0] == 989.0
    assert detect_peak_tflops("NVIDIA H100 PCIe")[0] == 756.0
    assert detect_peak_tflops("NVIDIA H200")[0] == 989.0
    peak, why = detect_peak_tflops("Some Future GPU")
    assert peak is None and "--peak-tflops" in why


def _hand_counts() -> dict[str, int]:
    """Parameters of VIDEO_LLAVA_7B counted from its sizes, layer by layer."""
    t, v = VIDEO_LLAVA_7B.text, VIDEO_LLAVA_7B.vision
    h, m, vocab = t["hidden_size"], t["intermediate_size"], VIDEO_LLAVA_7B.vocab_size
    decoder_layer = 4 * h * h + 3 * h * m + 2 * h  # q k v o, gate up down, two RMSNorms
    language_model = vocab * h + t["num_hidden_layers"] * decoder_layer + h
    vh, vm = v["hidden_size"], v["intermediate_size"]
    positions = (v["image_size"] // v["patch_size"]) ** 2 + 1
    clip_layer = 4 * (vh * vh + vh) + (vh * vm + vm) + (vm * vh + vh) + 2 * 2 * vh
    tower = (3 * v["patch_size"] ** 2 * vh + vh + positions * vh  # patch conv, CLS, positions
             + 2 * vh + v["num_hidden_layers"] * clip_layer + 2 * vh)  # pre/post LayerNorm
    projector = (vh * h + h) + (h * h + h)
    return {"language_model": language_model, "lm_head": vocab * h, "video_tower": tower,
            "image_tower": tower, "projector": projector}


def test_the_7b_architecture_has_the_published_shape_without_allocating():
    import torch

    from engine.model.loading import attach_lora

    model = build_model(VIDEO_LLAVA_7B, device="meta", dtype=torch.bfloat16)
    assert all(p.device.type == "meta" for p in model.parameters())
    counts = count_parameters(model)
    hand = _hand_counts()
    for part, expected in hand.items():
        assert counts[part] == expected, part
    assert counts["other"] == 0
    assert counts["total"] == sum(hand.values()) == 7_366_279_168
    # Vicuna-7B with the 64 added vocabulary rows, and one CLIP ViT-L/14 per tower.
    assert 6.70e9 < counts["language_model"] + counts["lm_head"] < 6.80e9
    assert 0.30e9 < counts["video_tower"] < 0.31e9
    assert video_step_parameters(counts) == 7_063_099_392

    config = build_config(VIDEO_LLAVA_7B)
    assert VIDEO_LLAVA_7B.video_tokens == config.video_seq_length == 2056
    assert model.config.text_config._attn_implementation == "sdpa"

    model = attach_lora(model, r=128, alpha=256, dropout=0.05)
    lora = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n)
    # Per layer: r × (in + out) for q k v o (4096→4096), gate and up (4096→11008), down.
    assert lora == 32 * 128 * (4 * (4096 + 4096) + 3 * (4096 + 11008))


def test_a_synthetic_sample_is_encoded_and_collated_by_the_product():
    import torch

    from engine.train import collate

    processor, arch = build_processor(VIDEO_LLAVA_7B)
    # The tokenizer's own placeholder ids; the vocabulary keeps the 7B's size.
    assert arch.video_token_index == processor.video_token_id
    assert arch.vocab_size == VIDEO_LLAVA_7B.vocab_size > len(processor.tokenizer)
    examples, media = synthetic_examples(processor, SampleLayout(), 2, num_frames=8,
                                         frame_size=224, max_length=2048)
    batch = collate(examples, media, processor.tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, 2_300)
    assert batch["pixel_values_videos"].shape == (2, 8, 3, 224, 224)
    assert not torch.equal(*batch["pixel_values_videos"])  # each sample its own video
    ids, labels = batch["input_ids"], batch["labels"]
    assert ((ids == arch.video_token_index).sum(dim=1) == 2_056).all()
    assert 2_056 == VIDEO_LLAVA_7B.video_tokens
    assert not (ids == arch.image_token_index).any()
    assert ((labels != -100).sum(dim=1) == 200).all()
    labelled = labels != -100
    assert (labels[labelled] == ids[labelled]).all()
    assert not labelled[:, :2_100].any()  # the prompt and the video are never labelled
    assert (ids[:, -1] == processor.tokenizer.eos_token_id).all()
    assert bool(batch["attention_mask"].all())

    with pytest.raises(BenchTrainError, match="prompt_tokens"):
        synthetic_examples(processor, SampleLayout(prompt_tokens=2), 1, num_frames=8,
                           frame_size=224)


def test_bad_grid_settings_name_the_option():
    assert parse_batch_sizes("1,2,4") == [1, 2, 4]
    assert parse_switches("--checkpointing", "on,off") == [True, False]
    with pytest.raises(BenchTrainError, match="--batch-sizes.*'1,x'"):
        parse_batch_sizes("1,x")
    with pytest.raises(BenchTrainError, match="--batch-sizes"):
        parse_batch_sizes("0")
    with pytest.raises(BenchTrainError, match="--bf16.*'maybe'"):
        parse_switches("--bf16", "maybe")
    with pytest.raises(BenchTrainError, match="--steps.*--warmup"):
        bench_train(steps=0, warmup=-1, smoke=True)
    assert parse_overrides(["lora_r=8", "attention=eager"]) == {"lora_r": "8",
                                                                "attention": "eager"}
    with pytest.raises(BenchTrainError, match="--set lora_r: expected KEY=VALUE"):
        parse_overrides(["lora_r"])
    with pytest.raises(BenchTrainError, match="lora_rr: unknown setting.*did you mean lora_r"):
        base_config("paper", {"lora_rr": "8"})
    with pytest.raises(BenchTrainError, match="--set batch_size: set by the grid"):
        base_config("paper", {"batch_size": "8"})
    with pytest.raises(BenchTrainError, match="preset 'nope'"):
        base_config("nope")
    # The grid's samples per step must suit every batch size, as a run's must.
    with pytest.raises(BenchTrainError, match="batch 3: .*samples_per_step"):
        grid_config(base_config("paper", {"samples_per_step": "16", "grad_accum": "none"}),
                    batch_size=3, checkpointing=True, bf16=True)


def test_every_configuration_is_the_preset_through_apply_overrides():
    from dataclasses import asdict

    from engine.jobs.train_settings import apply_overrides, load_preset

    base = base_config("paper", {"lora_r": "8"})
    config = grid_config(base, batch_size=2, checkpointing=True, bf16=False)
    assert asdict(config) == asdict(apply_overrides(load_preset("paper"), {
        "samples_per_step": "none", "grad_accum": "1", "lora_r": "8", "batch_size": "2",
        "gradient_checkpointing": "true", "bf16": "false"}))
    # Everything the grid does not set is the preset's.
    paper = asdict(load_preset("paper"))
    changed = {k for k, v in asdict(config).items() if paper[k] != v}
    assert changed == {"samples_per_step", "grad_accum", "lora_r", "batch_size",
                       "gradient_checkpointing", "bf16"}


def test_ddft_bench_train_prints_the_table_and_writes_json(tmp_path):
    from engine.cli.main import app

    out = tmp_path / "bench.json"
    result = CliRunner().invoke(app, [
        "bench", "train", "--smoke", "--batch-sizes", "1", "--checkpointing", "off",
        "--steps", "1", "--warmup", "0", "--set", "lora_r=8", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "SMOKE TEST" in result.output and "FLOPs/step = 4 × N_params" in result.output
    assert "r=8, alpha=256" in result.output
    data = json.loads(out.read_text())
    assert data["smoke"] and data["flop_convention"] == FLOP_CONVENTION
    [config] = data["configs"]
    assert config["status"] == "ok" and config["tokens_per_s"] > 0
    assert config["train_config"]["lora_r"] == 8 and config["train_config"]["lora_alpha"] == 256

    bad = CliRunner().invoke(app, ["bench", "train", "--batch-sizes", "two"])
    assert bad.exit_code == 1
    assert "--batch-sizes" in bad.output and "'two'" in bad.output


# The step is the product's, so `python -m engine.bench_train` needs what engine.train needs
# (torch, transformers, peft, accelerate, and the store's libraries through engine.jobs), but
# never the media readers, the TUI, the LLM client or the CLI.
FORBIDDEN = ("decord", "av", "textual", "openai", "plotext", "workbench", "typer", "rich",
             "ingredient_slicer")


def test_the_benchmark_needs_no_media_reader_tui_llm_client_or_cli():
    # At import, and through a whole (tiny) run of `python -m engine.bench_train`.
    code = (
        "import sys\n"
        "import engine.bench_train as b\n"
        "print(' '.join(sorted(sys.modules)))\n"
        "assert b.main(['--smoke', '--batch-sizes', '1', '--checkpointing', 'off',"
        " '--steps', '1', '--warmup', '0']) == 0\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    at_import, after_run = (
        {name.split(".")[0] for name in line.split()}
        for line in (out.stdout.splitlines()[0], out.stdout.splitlines()[-1]))
    assert not at_import & {"torch", "transformers", "peft", *FORBIDDEN}
    assert {"torch", "transformers", "peft", "accelerate"} <= after_run
    assert not after_run & set(FORBIDDEN), after_run & set(FORBIDDEN)
    assert "SMOKE TEST" in out.stdout


# ---------------------------------------------------------------- the product's step


class LossLog:
    """TrainCallbacks that keeps each logged step's loss."""

    def __init__(self):
        self.losses: list[float] = []

    def on_start(self, total_steps, start_step=0):
        pass

    def log(self, step, values):
        self.losses.append(values["loss"])

    def should_stop(self):
        return False

    def on_checkpoint(self, step, path, final):
        pass


def test_the_benchmark_runs_train_loras_step_and_gets_its_losses(
        engine_tiny_model, engine_media_dir, tmp_path, monkeypatch):
    import engine.train as product
    from engine.jobs.train_settings import apply_overrides
    from engine.model.loading import load_model

    # One video, so that every step of a run has the benchmark's batch.
    example = TrainExample("video", "What is the recipe?", RECIPE,
                           str(engine_media_dir / "red0.mp4"), sample_id=0)
    processor = load_model(str(engine_tiny_model), device="cpu").processor
    media = product.load_media(processor, [example], num_frames=8)
    # The paper preset as the grid makes it, LoRA dropout 0.05 included.
    config = grid_config(base_config("paper"), batch_size=1, checkpointing=False, bf16=False)
    assert config.lora_dropout > 0 and config.lora_r == 128
    encoded = [product.encode_example(processor, example, media[example.media_path],
                                      config.max_length)]

    calls = []
    real_step = product.optimizer_step

    def counted(training, micro_batches, **kwargs):
        calls.append(training)
        return real_step(training, micro_batches, **kwargs)

    monkeypatch.setattr(product, "optimizer_step", counted)
    point = ConfigResult(checkpointing=False, batch_size=1, bf16=False)
    time_configuration(
        point, config,
        build=lambda dtype: load_model(str(engine_tiny_model), device="cpu", dtype=dtype).model,
        accelerator=product.make_accelerator("cpu"), device="cpu",
        pad_id=processor.tokenizer.pad_token_id, examples=encoded, media=media,
        warmup=1, steps=3)
    assert len(calls) == 4 and len(point.step_seconds) == 3 and len(point.losses) == 4
    assert point.tokens_per_step == len(encoded[0].input_ids) and point.samples_per_step == 1
    assert len(set(point.losses)) == 4  # the weights move: the comparison below means something

    # A run of the same length on the same sample with the same settings goes through the same
    # function and reports the same losses, to the last bit.
    log = LossLog()
    product.train_lora(base=str(engine_tiny_model), examples=[example], out_dir=tmp_path / "run",
                       config=apply_overrides(config, {"max_steps": "4", "log_every": "1",
                                                       "save_every": "0"}),
                       callbacks=log, device="cpu")
    assert len(calls) == 8
    assert log.losses == point.losses
