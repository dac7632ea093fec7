"""Job handlers: what `ddft jobs run ID` executes for a train, generate or judge job."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from db import queries
from db.store import session_scope
from engine.jobs import JobContext, JobError


def generation_key(prompt: str, decoding: dict[str, Any]) -> str:
    """What identifies a generation besides variant and sample: the prompt and decoding settings."""
    blob = json.dumps({"prompt": prompt, "decoding": decoding}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


# ---------------------------------------------------------------- train


def train_task(ctx: JobContext) -> dict[str, Any]:
    """LoRA-train a base model on the included samples of the named training datasets.

    params: base (hub id or directory), datasets (names), variant (name of the result),
    config (TrainConfig fields). Raises JobError for unknown datasets or a taken variant name.
    """
    # torch and transformers load here, inside the job's own process.
    from engine.train import TrainConfig, TrainExample, train_lora

    params = ctx.params
    variant_name = params["variant"]
    with session_scope(ctx.engine) as session:
        if queries.get_variant(session, name=variant_name) is not None:
            raise JobError(f"a model variant named {variant_name!r} exists already")
        examples = []
        for name in params["datasets"]:
            dataset = queries.get_dataset(session, name=name)
            if dataset is None:
                raise JobError(f"no dataset named {name!r}")
            for sample in queries.list_samples(session, dataset_id=dataset.id, included=True,
                                               limit=None):
                if sample.check_status == "failed":
                    continue  # `ddft data check` found it unusable; its reasons are on the row
                examples.append(
                    TrainExample(
                        modality=sample.modality,
                        prompt=sample.prompt,
                        answer=sample.answer,
                        media_path=sample.media_path,
                        sample_id=sample.id,
                    )
                )
    if not examples:
        raise JobError("no included samples in " + ", ".join(params["datasets"]))
    config = TrainConfig(**params.get("config", {}))
    out_dir = Path(params.get("out_dir") or ctx.workspace / "runs" / f"train-{ctx.job_id:05d}")
    ctx.log(f"training {variant_name} on {len(examples)} samples into {out_dir}")

    class Callbacks:
        def on_start(self, total_steps: int) -> None:
            ctx.progress(0, total_steps, f"training on {len(examples)} samples")

        def log(self, step: int, values: dict[str, float]) -> None:
            ctx.metrics(step, values)
            ctx.progress(step, message=f"loss {values.get('loss', float('nan')):.4f}")

        def should_stop(self) -> bool:
            return ctx.should_stop()

        def on_checkpoint(self, step: int, path: Path, final: bool) -> None:
            with session_scope(ctx.engine) as session:
                queries.add_checkpoint(session, job_id=ctx.job_id, step=step, path=str(path),
                                       final=final)

    result = train_lora(base=params["base"], examples=examples, out_dir=out_dir, config=config,
                        callbacks=Callbacks())
    if result.stopped:
        return {"adapter_dir": str(result.adapter_dir), "steps": result.steps, "stopped": True}
    with session_scope(ctx.engine) as session:
        checkpoints = queries.list_checkpoints(session, job_id=ctx.job_id)
        final = next((c for c in reversed(checkpoints) if c.final), None)
        queries.create_variant(
            session,
            name=variant_name,
            base_model=params["base"],
            adapter_path=str(result.adapter_dir),
            job_id=ctx.job_id,
            checkpoint_id=final.id if final else None,
            description=f"LoRA on {', '.join(params['datasets'])}",
        )
    return {
        "adapter_dir": str(result.adapter_dir),
        "steps": result.steps,
        "final_loss": result.final_loss,
        "variant": variant_name,
    }


# ---------------------------------------------------------------- generate


def generate_task(ctx: JobContext) -> dict[str, Any]:
    """Generate answers of one variant for the included samples of an eval set; what is stored
    already (same variant, sample, prompt and decoding) is skipped, so a rerun resumes.

    params: variant, eval_set, batch_size, max_new_tokens, num_frames.
    """
    params = ctx.params
    with session_scope(ctx.engine) as session:
        variant = queries.get_variant(session, name=params["variant"])
        if variant is None:
            raise JobError(f"no model variant named {params['variant']!r}")
        dataset = queries.get_dataset(session, name=params["eval_set"])
        if dataset is None:
            raise JobError(f"no eval set named {params['eval_set']!r}")
        samples = queries.list_samples(session, dataset_id=dataset.id, included=True, limit=None)
    # torch and transformers load here, inside the job's own process.
    from engine.generate import GenRequest, decoding_params, generate
    from engine.model.loading import load_variant

    decoding = decoding_params(
        max_new_tokens=params.get("max_new_tokens", 256),
        num_frames=params.get("num_frames", 8),
    )
    todo = []
    with session_scope(ctx.engine) as session:
        for sample in samples:
            key = generation_key(sample.prompt, decoding)
            if queries.find_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       params_key=key) is None:
                todo.append(GenRequest(sample_id=sample.id, modality=sample.modality,
                                       prompt=sample.prompt, media_path=sample.media_path))
    total = len(samples)
    done = total - len(todo)
    ctx.progress(done, total, f"{variant.name}: {done} of {total} stored")
    if not todo:
        return {"generated": 0, "skipped": done}
    loaded = load_variant(variant.base_model, variant.adapter_path)
    generated = 0
    for output in generate(
        loaded,
        todo,
        batch_size=params.get("batch_size", 4),
        max_new_tokens=decoding["max_new_tokens"],
        num_frames=decoding["num_frames"],
    ):
        with session_scope(ctx.engine) as session:
            sample = queries.get_sample(session, sample_id=output.sample_id)
            queries.add_generation(
                session,
                variant_id=variant.id,
                sample_id=output.sample_id,
                job_id=ctx.job_id,
                prompt=output.prompt,
                text=output.text,
                params_key=generation_key(sample.prompt, decoding),
                decoding=decoding,
                frame_indices=output.frame_indices,
                frame_times=output.frame_times,
                n_tokens=output.n_tokens,
            )
        generated += 1
        ctx.progress(done + generated, total, f"{variant.name}: sample {output.sample_id}")
        if ctx.should_stop():
            break
    return {"generated": generated, "skipped": done}


# ---------------------------------------------------------------- judge


def judge_task(ctx: JobContext) -> dict[str, Any]:
    """Judge every stored generation for an eval set with the offline judge; judged ones are
    skipped. params: eval_set, variants (optional list of names), judge ("offline")."""
    from engine.judge import offline

    params = ctx.params
    if params.get("judge", "offline") != "offline":
        raise JobError(f"unknown judge {params.get('judge')!r}; this version has: offline")
    with session_scope(ctx.engine) as session:
        dataset = queries.get_dataset(session, name=params["eval_set"])
        if dataset is None:
            raise JobError(f"no eval set named {params['eval_set']!r}")
        wanted = set(params.get("variants") or [])
        variants = {v.id: v.name for v in queries.list_variants(session)
                    if not wanted or v.name in wanted}
        generations = [g for g in queries.list_generations(session, dataset_id=dataset.id)
                       if g.variant_id in variants]
    total, judged, skipped = len(generations), 0, 0
    ctx.progress(0, total, "judging")
    for index, generation in enumerate(generations, 1):
        with session_scope(ctx.engine) as session:
            if queries.find_judgment(session, generation_id=generation.id, judge=offline.JUDGE_NAME,
                                     protocol=offline.PROTOCOL,
                                     prompt_version=offline.PROMPT_VERSION):
                skipped += 1
            else:
                sample = queries.get_sample(session, sample_id=generation.sample_id)
                result = offline.score_recipe(generation.text, sample.answer)
                queries.add_judgment(
                    session,
                    generation_id=generation.id,
                    judge=offline.JUDGE_NAME,
                    protocol=offline.PROTOCOL,
                    prompt_version=offline.PROMPT_VERSION,
                    score=result.score,
                    verdict=result.verdict,
                    raw="",
                    details=result.details(),
                    job_id=ctx.job_id,
                )
                judged += 1
        ctx.progress(index, total)
        if ctx.should_stop():
            break
    return {"judged": judged, "skipped": skipped}


# ---------------------------------------------------------------- check


def check_task(ctx: JobContext) -> dict[str, Any]:
    """Check samples before training (see engine.checks). params: datasets (names, optional),
    model (directory or hub id for the token budget, optional)."""
    from engine.checks import check_samples

    try:
        summary = check_samples(
            ctx.engine,
            datasets=ctx.params.get("datasets") or None,
            model=ctx.params.get("model"),
            thumbs_dir=ctx.workspace / "thumbs",
            progress=lambda done, total, message: ctx.progress(done, total, message),
            should_stop=ctx.should_stop,
        )
    except KeyError as exc:
        raise JobError(str(exc.args[0])) from None
    return {"checked": summary.checked, "ok": summary.ok, "warned": summary.warned,
            "failed": summary.failed, "reasons": summary.reasons, "notes": summary.notes}
