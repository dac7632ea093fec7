"""Typed job requests: params round-trip, every problem at once, one registry, one UserError."""

from __future__ import annotations

import importlib
import inspect

import pytest

from db import queries
from db.errors import UserError
from db.store import session_scope
from engine.jobs.requests import (
    KINDS,
    CheckRequest,
    GenerateRequest,
    GroundRequest,
    JobError,
    JudgeRequest,
    TimestampsRequest,
    TrainRequest,
)

EXAMPLES = [
    TrainRequest(variant="v2", base="org/model", preset="paper", datasets={"a": 1, "b": 0.5},
                 overrides={"lora_r": "8"}, gpus=2),
    GenerateRequest(variant="tuned", eval_set="eval", batch_size=2, max_new_tokens=12,
                    num_frames=4),
    TimestampsRequest(variant="tuned", eval_set="eval", max_new_tokens=30),
    JudgeRequest(eval_set="eval", variants=["a", "b"], judge="gpt", protocol="pairwise",
                 model="local-judge", base_url="http://127.0.0.1:9/v1", concurrency=3,
                 pair=["a", "b"]),
    JudgeRequest(eval_set="eval"),
    GroundRequest(variant="tuned", eval_set="eval", layers="0-2", heads="1,3", top_k=2),
    CheckRequest(datasets=["a"], model="/models/tiny"),
    CheckRequest(),
]


@pytest.mark.parametrize("request_", EXAMPLES, ids=lambda r: type(r).__name__)
def test_params_round_trip_through_json(request_):
    import json

    params = request_.params()
    # What the Job row stores is JSON; what comes back must be the same request.
    stored = json.loads(json.dumps(params))
    again = type(request_).from_params(stored)
    assert again == request_ and type(again) is type(request_)
    assert again.params() == params


def test_every_kind_has_its_request_and_a_handler_that_exists():
    assert set(KINDS) == {"train", "generate", "timestamps", "judge", "ground", "check"}
    for kind, entry in KINDS.items():
        assert entry.request.kind == kind
        module, _, function = entry.handler.partition(":")
        handler = getattr(importlib.import_module(module), function)
        assert list(inspect.signature(handler).parameters) == ["ctx"]


def test_an_older_generate_job_asking_for_timestamps_reads_as_a_timestamps_request():
    request = GenerateRequest.from_params({"variant": "v", "eval_set": "e", "task": "timestamps",
                                           "num_frames": 8})
    assert type(request) is TimestampsRequest and request.task == "timestamps"
    older_train = TrainRequest.from_params({"variant": "v", "base": "org/m",
                                            "datasets": ["a", "b"],
                                            "config": {"max_steps": 3, "bf16": False}})
    assert older_train.datasets == {"a": 1.0, "b": 1.0}
    assert older_train.overrides == {"max_steps": "3", "bf16": "False"}


def test_missing_required_params_are_one_user_error():
    with pytest.raises(JobError, match="ground job params: expected variant, eval_set"):
        GroundRequest.from_params({"layers": "all"})
    with pytest.raises(JobError, match="train job params: expected base"):
        TrainRequest.from_params({"variant": "v"})


def _store(db_engine):
    with session_scope(db_engine) as session:
        video = queries.get_or_create_dataset(session, name="eval", modality="video",
                                              purpose="eval")
        queries.get_or_create_dataset(session, name="qa", modality="text", purpose="eval")
        queries.add_samples(session, dataset_id=video.id, samples=[
            {"external_id": "v1", "modality": "video", "prompt": "recipe?", "answer": "a"}])
        queries.create_variant(session, name="tuned", base_model="/m")


def _problems(db_engine, request) -> list[str]:
    with session_scope(db_engine) as session:
        return request.problems(session)


def test_a_good_request_has_no_problems(ddft_store):
    _store(ddft_store)
    for request in (GenerateRequest(variant="tuned", eval_set="eval"),
                    TimestampsRequest(variant="tuned", eval_set="eval"),
                    JudgeRequest(eval_set="eval", variants=["tuned"]),
                    CheckRequest(datasets=["qa"])):
        assert _problems(ddft_store, request) == [], request


@pytest.mark.parametrize("request_, expected", [
    (GenerateRequest(variant="ghost", eval_set="nope", batch_size=0, max_new_tokens=-1,
                     num_frames="8"),  # type: ignore[arg-type]
     ["no model variant named 'ghost'", "no eval set named 'nope'",
      "batch_size: expected an integer >= 1, found 0",
      "max_new_tokens: expected an integer >= 1, found -1",
      "num_frames: expected an integer >= 1, found '8'"]),
    (TimestampsRequest(variant="ghost", eval_set="qa"),
     ["no model variant named 'ghost'", "qa holds text samples; timestamps needs videos"]),
    (JudgeRequest(eval_set="nope", variants=["ghost"], judge="gpt", protocol="pairwise",
                  concurrency=0, pair=["tuned"]),
     ["no eval set named 'nope'", "no model variant named 'ghost'",
      "pair: the pairwise protocol needs two different variants (--pair A --pair B), found 1",
      "concurrency: expected an integer >= 1, found 0"]),
    (JudgeRequest(eval_set="eval", judge="oracle"),
     ["judge: expected offline or gpt, found 'oracle'"]),
    (JudgeRequest(eval_set="eval", judge="gpt", protocol="vibes"),
     ["protocol: expected one of paper, upstream, two-stage, pairwise, found 'vibes'"]),
    (GroundRequest(variant="tuned", eval_set="qa", layers="top", heads="late", top_k=9),
     ["qa holds text samples; grounding needs videos",
      "layers: expected 'all', 'late' or numbers and ranges like 12-31, found 'top'",
      "heads: expected 'all' or numbers", "top_k: expected 1 to 8, found 9"]),
    (GroundRequest(variant="tuned", eval_set="eval"),
     ["tuned has no recipes for eval to ground"]),
    (CheckRequest(datasets=["qa", "ghost", "nope"]),
     ["no dataset named ghost", "no dataset named nope"]),
], ids=lambda value: type(value).__name__ if not isinstance(value, list) else "")
def test_problems_name_every_bad_field_at_once(ddft_store, request_, expected):
    _store(ddft_store)
    problems = _problems(ddft_store, request_)
    text = "\n".join(problems)
    for part in expected:
        assert part in text, (part, problems)
    # One line each, and no more problems than were asked for.
    assert all("\n" not in line for line in problems)
    assert len(problems) == len(expected)


@pytest.mark.parametrize("path, name, other", [
    ("engine.jobs.requests", "JobError", RuntimeError),
    ("engine.jobs.train_settings", "TrainError", ValueError),
    ("engine.media", "MediaError", ValueError),
    ("engine.model.loading", "ModelLoadError", RuntimeError),
    ("engine.model.tiny", "TinyModelError", RuntimeError),
    ("engine.importers.kitchen", "KitchenImportError", ValueError),
    ("engine.importers.base", "ImportFailed", ValueError),
    ("engine.importers.llava", "LlavaExportError", ValueError),
    ("engine.export", "ExportError", ValueError),
    ("engine.evaluation.grounding", "GroundingError", ValueError),
    ("engine.kitchen.build", "KitchenError", ValueError),
    ("engine.bench_train", "BenchTrainError", ValueError),
    ("engine.bench_generate", "BenchGenerateError", RuntimeError),
    ("db.store", "StoreError", RuntimeError),
    ("db.campaigns", "CampaignError", ValueError),
])
def test_every_user_mistake_is_a_user_error_and_keeps_its_old_base(path, name, other):
    error = getattr(importlib.import_module(path), name)
    assert issubclass(error, UserError) and issubclass(error, other)


def test_a_variant_name_a_queued_or_running_run_will_register_is_taken(ddft_store):
    # A variant is only registered when its run finishes: two runs of one name used to both
    # start, and the second collided after training in full.
    from engine.jobs.runner import create_job

    _store(ddft_store)
    first = TrainRequest(variant="lora-1", base="org/model", preset="paper",
                         datasets={"qa": 1.0})
    assert not [p for p in _problems(ddft_store, first) if p.startswith("variant:")]
    job_id = create_job(ddft_store, kind="train", params=first.params(), title="train lora-1")
    second = TrainRequest(variant="lora-1", base="org/model", preset="paper",
                          datasets={"qa": 1.0})
    assert f"variant: 'lora-1' is being trained by job {job_id}" in _problems(ddft_store, second)
    with session_scope(ddft_store) as session:
        queries.update_job(session, job_id=job_id, status="cancelled")
    assert not [p for p in _problems(ddft_store, second) if p.startswith("variant:")]
