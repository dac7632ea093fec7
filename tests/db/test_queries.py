"""Typed query functions: adders take only real fields, and the queries moved into db/ from the
evaluation room and the checks read what they say."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from db import queries
from db.store import session_scope


@pytest.fixture
def judged(ddft_store):
    """An eval set with two samples, two variants, a recipe of each, and a timestamp answer."""
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="eval", modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": f"v{i}", "modality": "video", "prompt": "p", "answer": "a"}
            for i in range(2)])
        samples = queries.list_samples(session, dataset_id=dataset.id)
        base = queries.create_variant(session, name="base", base_model="/m")
        tuned = queries.create_variant(session, name="tuned", base_model="/m")
        recipes = {(v.name, s.external_id): queries.add_generation(
            session, variant_id=v.id, sample_id=s.id, prompt="p", text=f"{v.name} {s.id}",
            params_key="k").id for v in (base, tuned) for s in samples}
        timed = queries.add_generation(session, variant_id=base.id, sample_id=samples[0].id,
                                       prompt="p", text="1. [0s - 1s] x", params_key="t",
                                       task="timestamps")
        return {"dataset_id": dataset.id, "recipes": recipes, "timed": timed.id,
                "job": queries.create_job(session, kind="judge", params={}).id}


@pytest.mark.parametrize("adder, fields, wrong", [
    ("add_generation", {"variant_id": 1, "sample_id": 1, "prompt": "p", "text": "t",
                        "params_key": "new"}, {"frame_idices": [0]}),
    ("add_judgment", {"generation_id": 1, "judge": "offline", "protocol": "offline",
                      "prompt_version": "v1"}, {"scor": 3.0}),
    ("add_grounding", {"generation_id": 1, "params_key": "k"}, {"step": []}),
    ("update_job", {"job_id": 1}, {"staus": "running"}),
])
def test_a_misspelled_field_is_a_type_error_and_writes_nothing(ddft_store, judged, adder,
                                                                fields, wrong):
    def state(session):
        return (len(queries.list_generations(session, task=None)),
                len(queries.judged_rows(session)),
                len(queries.groundings_for_generation(session, generation_id=1)),
                queries.get_job(session, job_id=1).status)

    with session_scope(ddft_store) as session:
        before = state(session)
        with pytest.raises(TypeError, match=next(iter(wrong))):
            getattr(queries, adder)(session, **fields, **wrong)
        assert state(session) == before
        getattr(queries, adder)(session, **fields)  # spelled right, the same call works
        assert state(session) != before or adder == "update_job"


def test_add_samples_refuses_a_field_sample_does_not_have(ddft_store):
    with session_scope(ddft_store) as session:
        dataset = queries.get_or_create_dataset(session, name="qa", modality="text")
        with pytest.raises(TypeError, match="'spilt'"):
            queries.add_samples(session, dataset_id=dataset.id, samples=[
                {"external_id": "a", "modality": "text", "prompt": "p", "answer": "a"},
                {"external_id": "b", "modality": "text", "prompt": "p", "answer": "a",
                 "spilt": "eval"}])
        assert queries.count_samples(session, dataset_id=dataset.id) == 0


def test_add_generation_refuses_an_unknown_task(ddft_store, judged):
    with session_scope(ddft_store) as session:
        with pytest.raises(ValueError, match="'timestamp'"):
            queries.add_generation(session, variant_id=1, sample_id=1, prompt="p", text="t",
                                   params_key="other", task="timestamp")


def test_update_job_sets_what_is_given_and_keeps_the_rest(ddft_store, judged):
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with session_scope(ddft_store) as session:
        queries.update_job(session, job_id=judged["job"], status="failed", error="boom",
                           step=3, total=9, finished_at=moment)
    with session_scope(ddft_store) as session:
        job = queries.update_job(session, job_id=judged["job"], status="queued", error=None,
                                 finished_at=None)
        assert (job.status, job.error, job.finished_at, job.step, job.total, job.kind) == (
            "queued", None, None, 3, 9, "judge")
        with pytest.raises(KeyError):
            queries.update_job(session, job_id=999, status="running")


def test_scored_judgments_leave_out_unparsable_pairwise_and_other_judges(ddft_store, judged):
    base_v0, base_v1 = judged["recipes"][("base", "v0")], judged["recipes"][("base", "v1")]
    with session_scope(ddft_store) as session:
        add = queries.add_judgment
        kept = add(session, generation_id=base_v0, judge="offline", protocol="offline",
                   prompt_version="v1", score=4.0, verdict="yes").id
        add(session, generation_id=base_v0, judge="gpt", protocol="paper", prompt_version="v1",
            score=2.0, verdict="no")
        add(session, generation_id=base_v1, judge="offline", protocol="offline",
            prompt_version="v1", score=None, verdict="unparsable")
        add(session, generation_id=base_v1, judge="offline", protocol="pairwise",
            prompt_version="v1", score=1.0, verdict="win")
        add(session, generation_id=judged["recipes"][("tuned", "v0")], judge="offline",
            protocol="offline", prompt_version="v1", score=5.0, verdict="yes")
        found = queries.scored_judgments(session, generation_ids=[base_v0, base_v1],
                                         judge="offline")
        every = queries.scored_judgments(session, generation_ids={base_v0, base_v1})
        assert queries.scored_judgments(session, generation_ids=[]) == []
    assert [j.id for j in found] == [kept]
    assert [(j.judge, j.score) for j in every] == [("offline", 4.0), ("gpt", 2.0)]


def test_generation_sources_name_the_variant_and_sample_of_each_generation(ddft_store, judged):
    recipes = judged["recipes"]
    with session_scope(ddft_store) as session:
        sources = queries.generation_sources(
            session, generation_ids=[recipes[("tuned", "v1")], recipes[("base", "v0")]])
        assert queries.generation_sources(session, generation_ids=()) == {}
    assert sources == {recipes[("tuned", "v1")]: ("tuned", "v1"),
                       recipes[("base", "v0")]: ("base", "v0")}


def test_recipe_groundings_are_the_eval_sets_recipe_groundings_oldest_first(ddft_store, judged):
    recipes = judged["recipes"]
    with session_scope(ddft_store) as session:
        other = queries.get_or_create_dataset(session, name="other", modality="video",
                                              purpose="eval")
        queries.add_samples(session, dataset_id=other.id, samples=[
            {"external_id": "w", "modality": "video", "prompt": "p", "answer": "a"}])
        (outside,) = queries.list_samples(session, dataset_id=other.id)
        elsewhere = queries.add_generation(session, variant_id=1, sample_id=outside.id,
                                           prompt="p", text="t", params_key="k")
        for generation_id in (recipes[("tuned", "v1")], judged["timed"], elsewhere.id,
                              recipes[("base", "v0")]):
            queries.add_grounding(session, generation_id=generation_id, params_key="g",
                                  params={"top_k": 1}, steps=[{"index": 0, "frames": [2]}])
        found = queries.recipe_groundings(session, dataset_id=judged["dataset_id"])
    assert [(generation.id, sample.external_id, grounding.steps)
            for grounding, generation, sample in found] == [
        (recipes[("tuned", "v1")], "v1", [{"index": 0, "frames": [2]}]),
        (recipes[("base", "v0")], "v0", [{"index": 0, "frames": [2]}])]


def test_record_sample_checks_stores_each_outcome_and_refuses_an_unknown_status(ddft_store,
                                                                                 judged):
    moment = datetime(2025, 1, 2, tzinfo=timezone.utc)
    with session_scope(ddft_store) as session:
        first, second = queries.list_samples(session, dataset_id=judged["dataset_id"])
        queries.record_sample_checks(session, checks=[
            queries.SampleCheck(sample_id=first.id, status="failed", reasons=["media: gone"],
                                meta={"fps": 8}, checked_at=moment)])
        with pytest.raises(ValueError, match="'fine'"):
            queries.record_sample_checks(session, checks=[
                queries.SampleCheck(sample_id=second.id, status="fine", reasons=[], meta={},
                                    checked_at=moment)])
    with session_scope(ddft_store) as session:
        first, second = queries.list_samples(session, dataset_id=judged["dataset_id"])
        assert (first.check_status, first.check_reasons, first.meta) == (
            "failed", ["media: gone"], {"fps": 8})
        assert first.checked_at.replace(tzinfo=timezone.utc) == moment
        assert (second.check_status, second.checked_at) == ("unchecked", None)


def test_get_dataset_by_id(ddft_store, judged):
    with session_scope(ddft_store) as session:
        assert queries.get_dataset_by_id(session, dataset_id=judged["dataset_id"]).name == "eval"
        assert queries.get_dataset_by_id(session, dataset_id=999) is None
