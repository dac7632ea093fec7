"""Job handlers: what `ddft jobs run ID` executes for each kind of job in
engine.jobs.requests.KINDS. Each reads its typed request from the job's params."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from db import queries
from db.store import session_scope
from engine.jobs.requests import (
    CheckRequest,
    Found,
    GenerateRequest,
    GroundRequest,
    JobError,
    JudgeRequest,
    TimestampsRequest,
    TrainRequest,
    find_named,
)
from engine.jobs.runner import JobContext


def generation_key(prompt: str, decoding: dict[str, Any]) -> str:
    """What identifies a generation besides variant and sample: the prompt and decoding settings."""
    blob = json.dumps({"prompt": prompt, "decoding": decoding}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _find(ctx: JobContext, **names: Any) -> Found:
    """find_named in a session of its own. Raises JobError naming every name not in the
    store."""
    with session_scope(ctx.db_engine) as session:
        found = find_named(session, **names)
    if found.problems:
        raise JobError("; ".join(found.problems))
    return found


# ---------------------------------------------------------------- train


def _train_examples(ctx: JobContext, datasets: dict[str, float]) -> list[Any]:
    """The included samples of `datasets` that the data check did not fail, as TrainExamples.
    Raises JobError for an unknown dataset or when no sample is left."""
    from engine.train import TrainExample

    found = _find(ctx, datasets=list(datasets))
    examples = []
    with session_scope(ctx.db_engine) as session:
        for name, dataset in found.datasets.items():
            for sample in queries.list_samples(session, dataset_id=dataset.id, included=True,
                                               limit=None):
                if sample.check_status == "failed":
                    continue  # `ddft data check` found it unusable; its reasons are on the row
                # Every exchange of a multi-turn conversation is trained, not only the first.
                examples.append(TrainExample.from_sample(sample, dataset=name))
    if not examples:
        raise JobError("no included samples in " + ", ".join(datasets))
    return examples


def _train_config(request: TrainRequest) -> Any:
    """The run's TrainConfig: the preset, then the overrides. Raises TrainError listing every
    bad setting."""
    from engine.jobs.train_settings import apply_overrides, load_preset

    return apply_overrides(load_preset(request.preset), request.overrides)


def train_run_dir(ctx: JobContext) -> Path:
    """Where a train job keeps its checkpoints: runs/train-NNNNN in the workspace."""
    return ctx.workspace / "runs" / f"train-{ctx.job_id:05d}"


class _TrainJobCallbacks:
    """TrainCallbacks that write progress, metrics, checkpoints and notes to the job."""

    def __init__(self, ctx: JobContext, n_examples: int):
        self.ctx, self.n_examples = ctx, n_examples

    def on_start(self, total_steps: int, start_step: int = 0) -> None:
        what = f"training on {self.n_examples} samples"
        if start_step:
            what += f", resumed at step {start_step}"
        # What the interrupted process reported after its checkpoint is reported again by this
        # run: the store keeps one row per step.
        with session_scope(self.ctx.db_engine) as session:
            queries.delete_metrics_after(session, job_id=self.ctx.job_id, step=start_step)
        self.ctx.progress(start_step, total_steps, what)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.ctx.metrics(step, values)
        self.ctx.progress(step, message=f"loss {values.get('loss', float('nan')):.4f}")

    def should_stop(self) -> bool:
        return self.ctx.should_stop()

    def note(self, message: str) -> None:
        self.ctx.log(message)

    def on_checkpoint(self, step: int, path: Path, final: bool) -> None:
        with session_scope(self.ctx.db_engine) as session:
            existing = [c for c in queries.list_checkpoints(session, job_id=self.ctx.job_id)
                        if c.step == step]
            if existing:  # a resumed run cancelled again before its first step
                existing[0].path, existing[0].final = str(path), final
                session.add(existing[0])
            else:
                queries.add_checkpoint(session, job_id=self.ctx.job_id, step=step,
                                       path=str(path), final=final)


def train_here(ctx: JobContext, *, is_main: bool | None = None) -> dict[str, Any]:
    """Train in this process (one GPU, the CPU, or one rank of a data-parallel run), continuing
    from the run folder's last complete checkpoint when there is one. Returns the job result
    without the variant."""
    from engine.train import last_checkpoint, tidy_run_dir, train_lora

    request = TrainRequest.from_params(ctx.params)
    examples = _train_examples(ctx, request.datasets)
    config = _train_config(request)
    out_dir = train_run_dir(ctx)
    main = is_main is not False
    if main and out_dir.is_dir():
        tidy_run_dir(out_dir)  # a checkpoint killed between its renames is put back first
    resume_from = last_checkpoint(out_dir)
    if main:
        ctx.log(f"training {request.variant} on {len(examples)} samples into {out_dir}")
    callbacks = _TrainJobCallbacks(ctx, len(examples)) if main else None
    result = train_lora(base=request.base, examples=examples, out_dir=out_dir, config=config,
                        callbacks=callbacks, weights=request.datasets,
                        resume_from=resume_from, is_main=is_main)
    values: dict[str, Any] = {
        "adapter_dir": str(result.adapter_dir), "steps": result.steps,
        "total_steps": result.total_steps, "final_loss": result.final_loss,
        "truncated": result.truncated, "padding_fraction": round(result.padding_fraction, 4),
        "resumed_from_step": result.resumed_from, "n_samples": len(examples),
        "frames_file": str(out_dir / "frames.jsonl"),
    }
    if result.stopped:
        values["stopped"] = True
    return values


def distributed_command(job_id: int, workspace: Path, gpus: int, *, cpu: bool = False,
                        port: int | None = None) -> list[str]:
    """The argv that runs training job `job_id` data-parallel on `gpus` GPUs (or, with `cpu`,
    in that many CPU processes over gloo): `accelerate launch` of the worker entry (`python -m
    engine.jobs.train_worker --job ID`), one process per device; only rank 0 writes to the
    store and the run folder. `port`: the ranks' rendezvous port (accelerate's 29500 when
    None), so two runs on one machine do not meet."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
               "--num_processes", str(gpus), "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no"]
    if port is not None:
        command += ["--main_process_port", str(port)]
    return command + ["--module", "engine.jobs.train_worker", "--job", str(job_id),
                      "--workspace", str(workspace)]


def ranks_dir(run_dir: Path) -> Path:
    """Where each rank of a data-parallel run says it started (its pid) and how it ended: the
    launching process tells a rank killed by a signal (interrupted) from one that raised
    (failed)."""
    return run_dir / "ranks"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _train_distributed(ctx: JobContext, world: int, *, cpu: bool = False) -> dict[str, Any]:
    """Run the job on `world` GPUs (or CPU processes) through `accelerate launch` and wait;
    rank 0 reports. A rank killed from outside (kill -9, the OOM killer) leaves the job
    interrupted, resumable from its last checkpoint with every rank; a rank that raised fails
    it with that rank's error."""
    import os
    import shlex
    import subprocess

    if not cpu:
        import torch

        if torch.cuda.device_count() < world:
            raise JobError(f"gpus: asked for {world}, this machine has "
                           f"{torch.cuda.device_count()} CUDA devices")
    out_dir = train_run_dir(ctx)
    result_file = out_dir / "result.json"
    result_file.unlink(missing_ok=True)
    ranks = ranks_dir(out_dir)
    if ranks.exists():
        for stale in ranks.iterdir():
            stale.unlink()
    command = distributed_command(ctx.job_id, ctx.workspace, world, cpu=cpu, port=_free_port())
    env = dict(os.environ)
    if cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # every rank on the CPU, gloo between them
    ctx.log("launching " + shlex.join(command))
    returncode = subprocess.run(command, stdin=subprocess.DEVNULL, env=env,
                                check=False).returncode
    if returncode == 0 and result_file.is_file():
        return json.loads(result_file.read_text())
    started = {p.stem for p in ranks.glob("rank-*.started")} if ranks.exists() else set()
    ended = {p.stem for p in ranks.glob("rank-*.ended")} if ranks.exists() else set()
    vanished = sorted(started - ended)
    if vanished:
        # A rank died without a word: the machine's doing (a signal, the OOM killer), not the
        # run's; the others were stopped by the launcher. Its last checkpoint stays.
        names = ", ".join(name.replace("-", " ") for name in vanished)
        ctx.stop_signal = f"{names} being killed"
        return {"stopped": True}
    errors = [(ranks / f"{name}.ended").read_text().strip() for name in sorted(ended)]
    errors = [e for e in errors if e and e != "ok"]
    detail = f": {errors[0]}" if errors else "; the job's log says why"
    raise JobError(f"the {world}-{'process' if cpu else 'GPU'} run exited with status "
                   f"{returncode} without a result{detail}")


def train_task(ctx: JobContext) -> dict[str, Any]:
    """LoRA-train a base model on the included samples of the named training datasets, then
    record the result as a ModelVariant.

    The request: engine.jobs.requests.TrainRequest; the run folder is runs/train-NNNNN. Running
    the same job again (`ddft jobs resume`, `ddft train --resume`) continues from its last
    complete checkpoint.
    Raises JobError for unknown datasets, no usable samples or a taken variant name; TrainError
    for bad settings or out of GPU memory.
    """
    request = TrainRequest.from_params(ctx.params)
    variant_name = request.variant
    with session_scope(ctx.db_engine) as session:
        made = queries.get_variant(session, name=variant_name)
        if made is not None and made.job_id == ctx.job_id:
            # This job finished and recorded its variant and was stopped before it could say
            # so; the result it stored stays (a job's result is merged, not replaced).
            return {"variant": variant_name}
        if made is not None:
            raise JobError(f"a model variant named {variant_name!r} exists already")
    gpus = request.gpus
    final_dir = train_run_dir(ctx) / "final"
    if (final_dir / "train_config.json").is_file():
        # Training finished before the process died; only the variant is missing.
        stored = json.loads((final_dir / "train_config.json").read_text())
        result: dict[str, Any] = {"adapter_dir": str(final_dir), "steps": stored.get("step"),
                                  "final_loss": stored.get("loss", float("nan"))}
    elif gpus > 1:
        result = _train_distributed(ctx, gpus)
    elif request.processes > 1:
        result = _train_distributed(ctx, request.processes, cpu=True)
    else:
        result = train_here(ctx)
    if result.get("stopped"):
        return result
    adapter_dir, chosen, how = result["adapter_dir"], None, ""
    if request.variant_checkpoint == "best":
        chosen = best_checkpoint_of_run(ctx)
        adapter_dir, how = chosen.path, f", best checkpoint (step {chosen.step})"
        result = {**result, "variant_step": chosen.step}
    with session_scope(ctx.db_engine) as session:
        if chosen is None:
            checkpoints = queries.list_checkpoints(session, job_id=ctx.job_id)
            chosen = next((c for c in reversed(checkpoints) if c.final), None)
        queries.create_variant(
            session,
            name=variant_name,
            base_model=request.base,
            adapter_path=adapter_dir,
            job_id=ctx.job_id,
            checkpoint_id=chosen.id if chosen else None,
            description=f"LoRA on {', '.join(request.datasets)}{how}",
        )
    return {**result, "variant": variant_name}


def best_checkpoint_of_run(ctx: JobContext) -> Any:
    """The checkpoint of this training run with the lowest validation loss
    (engine.jobs.train_settings.best_checkpoint, the one function that picks it, also behind
    `ddft variants from-checkpoint --best`). Raises TrainError when the run measured no
    validation loss (val_fraction 0)."""
    from engine.jobs.train_settings import best_checkpoint

    with session_scope(ctx.db_engine) as session:
        return best_checkpoint(session, job_id=ctx.job_id)


# ---------------------------------------------------------------- generate


def _task_prompt(sample_prompt: str, task: str) -> str:
    """What a generation asks: the sample's own prompt for a recipe, the timestamp prompt for
    the timestamp evaluation."""
    if task == TimestampsRequest.task:
        from engine.evaluation.timestamps import TIMESTAMP_PROMPT

        return TIMESTAMP_PROMPT
    return sample_prompt


def _task_key(prompt: str, decoding: dict[str, Any], task: str) -> str:
    """A generation's key; a task other than the recipe is part of it, so a timestamp answer
    never stands in for a recipe (recipe keys stay what they always were)."""
    return generation_key(prompt, decoding if task == "recipe" else {**decoding, "task": task})


def generate_task(ctx: JobContext) -> dict[str, Any]:
    """Generate answers of one variant for the included samples of an eval set; what is stored
    already (same variant, sample, prompt, decoding and task) is skipped, so a rerun resumes.
    A sample whose video or image cannot be used is stored as a failure with a one-line reason
    (a GenerationFailure row) and the rest of its batch and of the job go on; the result
    carries "failed" and the first failures. Samples that `ddft data check` failed are left
    out unless the request includes them. The request: engine.jobs.requests.GenerateRequest (an
    older job's params may give a TimestampsRequest). Raises JobError for an unknown variant or
    eval set."""
    return _generate(ctx, GenerateRequest.from_params(ctx.params))


def timestamps_task(ctx: JobContext) -> dict[str, Any]:
    """Ask one variant for timed steps (engine.evaluation.timestamps.TIMESTAMP_PROMPT) on the
    included samples of an eval set; stored as generations of task "timestamps" and resumed
    as generate_task is. The request: engine.jobs.requests.TimestampsRequest."""
    return _generate(ctx, TimestampsRequest.from_params(ctx.params))


# A job's result names this many failed samples; the store keeps every one.
FAILURES_NAMED = 20


def _usable_samples(samples: list[Any], include_failed: bool) -> tuple[list[Any], list[Any]]:
    """(samples to do, samples left out because `ddft data check` failed them)."""
    if include_failed:
        return samples, []
    return ([s for s in samples if s.check_status != "failed"],
            [s for s in samples if s.check_status == "failed"])


def left_out_line(left_out: list[Any]) -> str:
    """The one line naming samples that failed `ddft data check` and were left out."""
    names = [s.external_id for s in left_out[:10]]
    more = f" and {len(left_out) - len(names)} more" if len(left_out) > len(names) else ""
    return (f"left out {len(left_out)} sample{'s' if len(left_out) != 1 else ''} that failed "
            f"ddft data check: {', '.join(names)}{more}; --include-failed to try them")


class _Failures:
    """Samples a job could not do: each stored as a GenerationFailure row the moment it fails,
    logged, and summed up in the job's result."""

    def __init__(self, ctx: JobContext, *, variant_id: int, task: str,
                 samples: dict[int, Any]):
        self.ctx, self.variant_id, self.task, self.samples = ctx, variant_id, task, samples
        self.named: list[dict[str, Any]] = []
        self.count = 0

    def add(self, sample_id: int, reason: str) -> None:
        sample = self.samples[sample_id]
        with session_scope(self.ctx.db_engine) as session:
            queries.add_generation_failure(session, variant_id=self.variant_id,
                                           sample_id=sample_id, task=self.task, reason=reason,
                                           job_id=self.ctx.job_id)
        self.count += 1
        if len(self.named) < FAILURES_NAMED:
            self.named.append({"sample": sample.external_id, "path": sample.media_path,
                               "reason": reason})
        self.ctx.log(f"failed: {sample.external_id} ({sample.media_path}): {reason}")

    def result(self) -> dict[str, Any]:
        """"failed": how many; "failures": the first FAILURES_NAMED, with path and reason."""
        return {"failed": self.count, **({"failures": self.named} if self.named else {})}


def _left_out_result(left_out: list[Any]) -> dict[str, Any]:
    if not left_out:
        return {}
    return {"left_out": len(left_out),
            "left_out_samples": [s.external_id for s in left_out[:FAILURES_NAMED]]}


def _generate(ctx: JobContext, request: GenerateRequest) -> dict[str, Any]:
    task = request.task
    found = _find(ctx, variant=request.variant, eval_set=request.eval_set)
    variant = found.variant
    with session_scope(ctx.db_engine) as session:
        samples = queries.list_samples(session, dataset_id=found.eval_set.id, included=True,
                                       limit=None)
    samples, left_out = _usable_samples(samples, request.include_failed)
    if left_out:
        ctx.log(left_out_line(left_out))
    # torch and transformers load here, inside the job's own process.
    from engine.generate import GenFailure, GenRequest, decoding_params, generate
    from engine.model.loading import load_variant

    decoding = decoding_params(max_new_tokens=request.max_new_tokens,
                               num_frames=request.num_frames)
    todo, keys = [], {}
    with session_scope(ctx.db_engine) as session:
        for sample in samples:
            prompt = _task_prompt(sample.prompt, task)
            keys[sample.id] = _task_key(prompt, decoding, task)
            if queries.find_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       params_key=keys[sample.id]) is None:
                todo.append(GenRequest(sample_id=sample.id, modality=sample.modality,
                                       prompt=prompt, media_path=sample.media_path))
    total = len(samples)
    done = total - len(todo)
    ctx.progress(done, total, f"{variant.name}: {done} of {total} stored")
    failures = _Failures(ctx, variant_id=variant.id, task=task,
                         samples={s.id: s for s in samples})
    if not todo:
        return {"generated": 0, "skipped": done, **failures.result(), **_left_out_result(left_out)}
    loaded = load_variant(variant.base_model, variant.adapter_path)
    generated = 0

    def failed(failure: GenFailure) -> None:
        # A file that cannot be read costs its own sample only; the batch fills up and goes on.
        failures.add(failure.sample_id, failure.reason)
        ctx.progress(done + generated + failures.count, total,
                     f"{variant.name}: sample {failure.sample_id} failed")

    for output in generate(
        loaded,
        todo,
        batch_size=request.batch_size,
        max_new_tokens=decoding["max_new_tokens"],
        num_frames=decoding["num_frames"],
        on_failure=failed,
    ):
        with session_scope(ctx.db_engine) as session:
            queries.add_generation(
                session,
                variant_id=variant.id,
                sample_id=output.sample_id,
                job_id=ctx.job_id,
                prompt=output.prompt,
                text=output.text,
                params_key=keys[output.sample_id],
                decoding=decoding,
                frame_indices=output.frame_indices,
                frame_times=output.frame_times,
                n_tokens=output.n_tokens,
                task=task,
            )
        generated += 1
        ctx.progress(done + generated + failures.count, total,
                     f"{variant.name}: sample {output.sample_id}")
        if ctx.should_stop():
            break
    if failures.count:
        ctx.log(f"{failures.count} of {len(todo)} samples failed; the rest are stored")
    return {"generated": generated, "skipped": done, **failures.result(),
            **_left_out_result(left_out)}


# ---------------------------------------------------------------- ground


def ground_task(ctx: JobContext) -> dict[str, Any]:
    """Ground every generated step of one variant's recipe generations on an eval set on the
    sampled frame its tokens attend to most (engine.evaluation.grounding); generations
    grounded with the same settings are skipped, so a rerun resumes.

    The request: engine.jobs.requests.GroundRequest. Each grounded sample's frame strip is
    saved under thumbs/grounding/ for the Compare screen. A video that cannot be read, or no
    longer gives the frames its generation saw, is stored as a failure of that sample (a
    GenerationFailure row, task "grounding") and the job goes on; samples that `ddft data check`
    failed are left out unless the request includes them. Raises JobError for an unknown
    variant or eval set, or layers, heads or a top-k the model does not have.
    """
    from db.queries import add_grounding, find_grounding
    from engine.attention import capture_frame_attention, language_config
    from engine.evaluation.grounding import (
        GroundingError,
        ground_steps,
        resolve_params,
        step_spans,
    )

    request = GroundRequest.from_params(ctx.params)
    found = _find(ctx, variant=request.variant, eval_set=request.eval_set)
    variant = found.variant
    with session_scope(ctx.db_engine) as session:
        generations = [g for g in queries.list_generations(session, variant_id=variant.id,
                                                           dataset_id=found.eval_set.id)
                       if g.frame_indices]
        samples = {g.sample_id: queries.get_sample(session, sample_id=g.sample_id)
                   for g in generations}
        # Samples whose recipe could not be generated have nothing to ground: named, not lost.
        no_recipe = [f.external_id for f in queries.list_generation_failures(
            session, variant_id=variant.id, dataset_id=found.eval_set.id, task="recipe")]
    kept, left_out = _usable_samples(list(samples.values()), request.include_failed)
    if left_out:
        ctx.log(left_out_line(left_out))
        generations = [g for g in generations if g.sample_id in {s.id for s in kept}]
    if no_recipe:
        ctx.log(f"{len(no_recipe)} samples have no recipe to ground (their generation "
                f"failed): {', '.join(no_recipe[:10])}")
    extra = {**_left_out_result(left_out),
             **({"no_recipe": len(no_recipe), "no_recipe_samples": no_recipe[:FAILURES_NAMED]}
                if no_recipe else {})}
    failures = _Failures(ctx, variant_id=variant.id, task="grounding", samples=samples)
    total = len(generations)
    ctx.progress(0, total, f"{variant.name}: grounding {total} generations")
    if not generations:
        return {"grounded": 0, "skipped": 0, **failures.result(), **extra}
    from engine.checks import write_frame_strip
    from engine.generate import failure_reason
    from engine.media import MediaError, sample_frames
    from engine.model.loading import load_variant

    loaded = load_variant(variant.base_model, variant.adapter_path)
    text_config = language_config(loaded.model)
    try:
        chosen = resolve_params(layers=request.layers, heads=request.heads,
                                top_k=request.top_k,
                                n_layers=text_config.num_hidden_layers,
                                n_heads=text_config.num_attention_heads)
    except GroundingError as exc:
        raise JobError(str(exc)) from None
    grounded = skipped = 0
    for number, generation in enumerate(generations, 1):
        with session_scope(ctx.db_engine) as session:
            exists = find_grounding(session, generation_id=generation.id,
                                    params_key=chosen.key) is not None
        if exists:
            skipped += 1
            ctx.progress(number, total)
            continue
        sample = samples[generation.sample_id]
        strip = ctx.workspace / "thumbs" / "grounding" / f"{sample.id}.png"
        try:
            sampled = sample_frames(sample.media_path, n=len(generation.frame_indices))
            if sampled.indices != list(generation.frame_indices):
                raise MediaError(f"the video now gives frames {sampled.indices}, its recipe "
                                 f"(generation {generation.id}) saw "
                                 f"{list(generation.frame_indices)}; regenerate it")
            if not strip.is_file():
                write_frame_strip(sample.media_path, strip)
        except MediaError as exc:
            # This sample's video alone; the other generations are grounded all the same.
            failures.add(sample.id, failure_reason(exc, sample.media_path))
            ctx.progress(number, total, f"{variant.name}: sample {sample.id} failed")
            continue
        try:
            attention = capture_frame_attention(loaded, prompt=generation.prompt,
                                                text=generation.text, frames=sampled.frames,
                                                layers=chosen.layers, heads=chosen.heads,
                                                frame_times=sampled.times,
                                                duration_s=sampled.duration_s)
        except GroundingError as exc:
            raise JobError(f"generation {generation.id}: {exc}") from None
        steps = ground_steps(attention, step_spans(generation.text),
                             frame_indices=generation.frame_indices,
                             frame_times=generation.frame_times, top_k=chosen.top_k)
        for step in steps:
            # Relative to the workspace, so a moved or copied workspace keeps its thumbnails.
            step["strip"] = str(strip.relative_to(ctx.workspace))
        with session_scope(ctx.db_engine) as session:
            add_grounding(session, generation_id=generation.id, params_key=chosen.key,
                          params=chosen.as_dict(), steps=steps, job_id=ctx.job_id)
        grounded += 1
        ctx.progress(number, total, f"{variant.name}: sample {sample.id}, {len(steps)} steps")
        if ctx.should_stop():
            break
    return {"grounded": grounded, "skipped": skipped, "params_key": chosen.key,
            **failures.result(), **extra}


# ---------------------------------------------------------------- judge


def judge_task(ctx: JobContext) -> dict[str, Any]:
    """Judge every stored generation for an eval set; judged ones are skipped.

    The request: engine.jobs.requests.JudgeRequest. The API key comes from $OPENAI_API_KEY and
    is never stored. Raises JobError for an unknown eval set or judge, and for a GPT judge that
    cannot run.
    """
    request = JudgeRequest.from_params(ctx.params)
    if request.judge == "gpt":
        return _gpt_judge(ctx, request)
    if request.judge != "offline":
        raise JobError(f"judge: expected offline or gpt, found {request.judge!r}")
    from engine.evaluation import offline_judge as offline

    dataset = _find(ctx, eval_set=request.eval_set).eval_set
    with session_scope(ctx.db_engine) as session:
        wanted = set(request.variants)
        variants = {v.id: v.name for v in queries.list_variants(session)
                    if not wanted or v.name in wanted}
        generations = [g for g in queries.list_generations(session, dataset_id=dataset.id)
                       if g.variant_id in variants]
    total, judged, skipped = len(generations), 0, 0
    ctx.progress(0, total, "judging")
    for index, generation in enumerate(generations, 1):
        with session_scope(ctx.db_engine) as session:
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


def _gpt_judge(ctx: JobContext, request: JudgeRequest) -> dict[str, Any]:
    from db.errors import UserError
    from engine.judge.gpt import judge_generations

    def report(state) -> None:
        cost = "" if state.cost_usd is None else f" · ${state.cost_usd:.4f}"
        ctx.progress(state.done, state.total,
                     f"{state.unparsable} unparsable · {state.requests} requests{cost}")

    try:
        run = judge_generations(
            ctx.db_engine,
            eval_set=request.eval_set,
            protocol=request.protocol,
            model=request.model,
            base_url=request.base_url,
            variants=request.variants or None,
            pair=tuple(request.pair) if request.pair else None,
            concurrency=request.concurrency,
            cache_dir=ctx.workspace / "cache",
            progress=report,
            should_stop=ctx.should_stop,
            job_id=ctx.job_id,
        )
    except (UserError, ValueError) as exc:  # JudgeError and engine.llm's errors
        raise JobError(str(exc)) from None
    ctx.log(str(run))
    return {"judged": run.judged, "skipped": run.skipped, "unparsable": run.unparsable,
            "requests": run.requests, "cache_hits": run.cache_hits,
            "cost_usd": run.cost_usd, "summary": str(run)}


# ---------------------------------------------------------------- check


def check_task(ctx: JobContext) -> dict[str, Any]:
    """Check samples before training (see engine.checks). The request:
    engine.jobs.requests.CheckRequest. Raises JobError for an unknown dataset."""
    from engine.checks import check_samples

    request = CheckRequest.from_params(ctx.params)
    _find(ctx, datasets=request.datasets)
    try:
        summary = check_samples(
            ctx.db_engine,
            datasets=request.datasets or None,
            model=request.model,
            thumbs_dir=ctx.workspace / "thumbs",
            progress=lambda done, total, message: ctx.progress(done, total, message),
            should_stop=ctx.should_stop,
        )
    except KeyError as exc:  # a dataset removed since the lookup above
        raise JobError(str(exc.args[0])) from None
    return {"checked": summary.checked, "ok": summary.ok, "warned": summary.warned,
            "failed": summary.failed, "reasons": summary.reasons, "notes": summary.notes}
