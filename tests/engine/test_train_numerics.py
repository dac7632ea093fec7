"""What a training step computes: every assistant turn of a conversation learned, the loss
weighed by micro-batch or by answer token against a hand computation, and the tiny model's
loss curve pinned for a fixed seed and input."""

from __future__ import annotations

import json

import pytest

from tests.real_fixtures import REAL_FIXTURES

from engine.train import (
    IGNORE_INDEX,
    TrainConfig,
    TrainExample,
    collate,
    encode_example,
    load_media,
    make_accelerator,
    optimizer_step,
    setup_training,
    train_lora,
)

from .test_train import RECIPE, Recorder

LLAVA_INSTRUCT = REAL_FIXTURES / "videollava_llava_json" / "llava_instruct_sample.json"


def test_every_assistant_turn_of_a_real_llava_conversation_is_learned(
        engine_tiny_model, tmp_path, ddft_store):
    """The real LLaVA-Instruct entry 000000033471 (three questions about a bus, three answers),
    imported, stored, read back as the train job reads samples, and encoded."""
    from db import queries
    from db.store import session_scope
    from engine.importers.base import apply_plan
    from engine.importers.llava import read_llava_json
    from engine.model.loading import load_model

    from .conftest import write_test_image

    if not LLAVA_INSTRUCT.exists():
        pytest.skip("real LLaVA excerpt absent")
    entry = json.loads(LLAVA_INSTRUCT.read_text())[0]
    image = tmp_path / entry["image"]
    image.parent.mkdir(parents=True)
    write_test_image(image, (200, 30, 30))
    plan = read_llava_json(LLAVA_INSTRUCT, media_root=tmp_path)
    assert plan.problems == []
    assert ("1 of 1 entries have more than one exchange; training learns all 3 gpt answers "
            "(a sample shows its first exchange, meta['conversations'] keeps them all)"
            in plan.notes)
    apply_plan(ddft_store, plan)
    with session_scope(ddft_store) as session:
        [dataset] = queries.list_datasets(session)
        [sample] = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        example = TrainExample.from_sample(sample, dataset=dataset.name)
    humans = [turn["value"] for turn in entry["conversations"][0::2]]
    answers = [turn["value"] for turn in entry["conversations"][1::2]]
    assert (example.prompt, example.answer) == (humans[0].removeprefix("<image>\n"), answers[0])
    assert example.turns == tuple(zip(humans[1:], answers[1:]))
    assert example.sample_id == sample.id and example.media_path == str(image)

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    tokenizer = processor.tokenizer
    media = load_media(processor, [example], num_frames=8)
    encoded = encode_example(processor, example, media[example.media_path])
    ids, labels = encoded.input_ids, encoded.labels
    # Labelled stretches, in order: each answer and its </s>; everything between is masked.
    spans, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    assert [tokenizer.decode(span[:-1]).strip() for span in spans] == answers
    assert all(span[-1] == tokenizer.eos_token_id for span in spans)
    # The masked stretches are the image prompt, then each later question in the template.
    text = tokenizer.decode(ids)
    for human, answer in zip(humans[1:], answers[1:]):
        assert f"</s>USER: {human} ASSISTANT: {answer}</s>" in text.replace("<s> ", "<s>")
    assert encoded.answer_tokens == sum(len(span) for span in spans)

    # The first exchange alone is what the sample showed before: the same ids as a prefix.
    single = encode_example(processor, TrainExample("image", example.prompt, example.answer,
                                                    example.media_path), media[example.media_path])
    assert ids[:len(single.input_ids)] == single.input_ids
    # max_length cuts later exchanges first and never ends on a masked question.
    cut = encode_example(processor, example, media[example.media_path],
                         max_length=len(single.input_ids) - 15 + 6)
    assert cut.truncated and cut.labels[-1] != IGNORE_INDEX


def _gradients(model_dir, normalisation: str, batches, *, hand: bool):
    """The gradients of one optimizer step over `batches` (grad_accum = len(batches)), as
    `optimizer_step` makes them or, with `hand`, from the loss written out by hand."""
    from engine.model.loading import load_model

    loaded = load_model(str(model_dir), device="cpu")
    config = TrainConfig(batch_size=1, grad_accum=len(batches), max_grad_norm=0.0,
                         lora_dropout=0.0, loss_normalisation=normalisation, seed=0)
    training = setup_training(loaded.model, config, accelerator=make_accelerator("cpu"),
                              device="cpu", pad_id=loaded.processor.tokenizer.pad_token_id)
    named = [(n, p) for n, p in training.model.named_parameters() if p.requires_grad]
    grads: dict = {}
    if not hand:
        training.optimizer.step = lambda *a, **k: grads.update(
            {n: p.grad.clone() for n, p in named if p.grad is not None})
        stats = optimizer_step(training, [(batch, {}) for batch in batches])
        return grads, stats
    losses, counts = [], []
    for batch in batches:
        inputs = collate(batch, {}, training.pad_id)
        counts.append(int((inputs["labels"][:, 1:] != IGNORE_INDEX).sum()))
        losses.append(training.model(**inputs).loss)
        if normalisation == "tokens":
            # transformers' own convention for a window: the sum over the step's answer tokens.
            summed = training.model(**inputs, num_items_in_batch=1).loss
            assert float(summed.detach()) == pytest.approx(float(losses[-1].detach()) * counts[-1], rel=1e-5)
    if normalisation == "batch":
        objective = sum(losses) / len(losses)
    else:
        objective = sum(loss * n for loss, n in zip(losses, counts)) / sum(counts)
    objective.backward()
    return {n: p.grad.clone() for n, p in named if p.grad is not None}, counts


def test_loss_normalisation_weighs_micro_batches_or_answer_tokens_as_computed_by_hand(
        engine_tiny_model):
    import torch

    from engine.model.loading import load_model

    processor = load_model(str(engine_tiny_model), device="cpu").processor
    # A one-word dish name and a long recipe: by batch each weighs half, by tokens the recipe
    # weighs what its answer tokens do.
    short = encode_example(processor, TrainExample("text", "Name the dish.", "Soup", None), None)
    long = encode_example(processor, TrainExample("text", "What is the recipe?", RECIPE * 2, None), None)
    batches = [[short], [long]]
    steps = {}
    for normalisation in ("batch", "tokens"):
        grads, stats = _gradients(engine_tiny_model, normalisation, batches, hand=False)
        expected, counts = _gradients(engine_tiny_model, normalisation, batches, hand=True)
        assert stats.answer_tokens == counts == [short.answer_tokens, long.answer_tokens]
        assert counts[1] > 10 * counts[0]
        assert set(grads) == set(expected)
        for name in grads:
            torch.testing.assert_close(grads[name], expected[name], rtol=1e-4, atol=1e-7,
                                       msg=f"{normalisation}: {name}")
        steps[normalisation] = grads
    # The two conventions are different steps: the comparison above can tell them apart.
    name = next(n for n in steps["batch"] if "lora_B" in n)
    assert not torch.allclose(steps["batch"][name], steps["tokens"][name], rtol=1e-2)


# The tiny model's loss at steps 1–5 on PINNED_INPUT with seed 0 (LoRA dropout on, so dropout's
# random stream is pinned too), measured on torch 2.14 / transformers 5.24 on CPU in float32.
# The same values came out bit for bit with 1, 2 and 4 threads and in separate processes. A CPU
# with other vector instructions sums in another order: float32 rounding (about 1e-7 an
# operation, grown over five AdamW steps at a 3e-3 learning rate) stays far below 1e-4, while
# a real change in numerics (data order, initialisation, masking, a loss convention) moves these
# by percents: the run the issue reported ended at 0.0444 against 0.0408.
PINNED_LOSSES = [7.791579246520996, 6.3050217628479, 3.3161447048187256, 5.239909648895264,
                 1.814432144165039]
PINNED_TOLERANCE = 1e-4


def test_the_tiny_models_losses_are_pinned_for_a_fixed_seed_and_input(
        engine_tiny_model, engine_media_dir, tmp_path):
    examples = [
        TrainExample("text", "How long should I rest a steak?", "About 5 to 10 minutes.", None, 0),
        TrainExample("text", "What is the recipe?", RECIPE, None, 1),
        TrainExample("image", "What is the dish in this image?", "Tomato Soup",
                     str(engine_media_dir / "red.png"), 2),
        TrainExample("image", "What is the dish in this image?", "Green Salad",
                     str(engine_media_dir / "green.png"), 3),
    ]
    recorder = Recorder()
    config = TrainConfig(max_steps=5, batch_size=2, learning_rate=3e-3,
                         projector_learning_rate=3e-3, lora_dropout=0.05, warmup_ratio=0.0,
                         seed=0)
    train_lora(base=str(engine_tiny_model), examples=examples, out_dir=tmp_path / "run",
               config=config, callbacks=recorder, device="cpu")
    losses = [values["loss"] for _, values in recorder.logs]
    assert losses == pytest.approx(PINNED_LOSSES, rel=PINNED_TOLERANCE)
