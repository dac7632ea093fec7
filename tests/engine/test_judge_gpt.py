"""The GPT judge through the real openai client against a scripted local server."""

from __future__ import annotations

import json
import re
import socket
import threading
import time

import pytest
from sqlmodel import select

from db import queries
from db.errors import UserError
from db.models import Judgment
from db.store import open_store, session_scope
from engine import llm
from engine.evaluation import judge_prompts as prompts
from engine.judge import gpt
from engine.judge.gpt import CACHE_FILE, JudgeError, judge_generations
from engine.evaluation.judge_prompts import (
    PROMPT_VERSIONS,
    parse_choice,
    parse_score,
    parse_upstream,
)
from engine.llm import LLMAuthError, LLMEndpointError, LLMError, LLMKeyError, LLMQuotaError
from tests.fake_openai import (
    API_KEY,
    FakeOpenAI,
    FakeRequest,
    fake_openai_server,  # noqa: F401
    malformed_body,
    quota_exceeded,
    rate_limited,
    reply,
    server_error,
)

EVAL_SET = "yc2-eval"
REFERENCES = {
    "s1": "Dish: Tomato Soup\nIngredients:\n- 4 cups chopped tomatoes\n- 1/2 tsp salt\nSteps:\n"
          "1. Simmer the tomatoes for 20 minutes.\n2. Blend until smooth.",
    "s2": "Dish: Green Salad\nIngredients:\n- 2 cups lettuce\n- 1 tbsp olive oil\nSteps:\n"
          "1. Wash the lettuce.\n2. Toss with the oil.",
    "s3": "Dish: Fried Rice\nIngredients:\n- 2 cups cooked rice\n- 2 eggs\nSteps:\n"
          "1. Scramble the eggs.\n2. Fry the rice with the eggs.",
}
PROMPT = "Write the recipe for the dish cooked in this video."


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Exponential back-off in milliseconds; Retry-After is still honoured as sent."""
    monkeypatch.setattr(llm, "BACKOFF_BASE_S", 0.01)


def build_store(db_engine) -> None:
    """An eval set of three videos with reference recipes, and two variants that each generated
    a recipe for every one; a generation's text names its variant and sample ("base s1")."""
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name=EVAL_SET, modality="video",
                                                purpose="eval", source="youcook2")
        queries.add_samples(session, dataset_id=dataset.id, samples=[
            {"external_id": sid, "modality": "video", "split": "val", "prompt": PROMPT,
             "answer": answer, "media_path": f"/videos/{sid}.mp4", "group": sid}
            for sid, answer in REFERENCES.items()])
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=None)
        for name in ("base", "tuned"):
            variant = queries.create_variant(session, name=name, base_model="tiny")
            for sample in samples:
                queries.add_generation(session, variant_id=variant.id, sample_id=sample.id,
                                       prompt=PROMPT, text=f"{name} {sample.external_id}",
                                       params_key="k1", decoding={"max_new_tokens": 256})


@pytest.fixture
def store(ddft_store):
    build_store(ddft_store)
    return ddft_store


def judge(db_engine, fake, **kwargs):
    kwargs.setdefault("api_key", API_KEY)
    kwargs.setdefault("eval_set", EVAL_SET)
    return judge_generations(db_engine, base_url=fake.base_url, **kwargs)


def judgments(db_engine, protocol: str) -> dict[str, Judgment]:
    """Stored judgments of `protocol` by their generation's text ("base s1")."""
    with session_scope(db_engine) as session:
        rows = session.exec(select(Judgment).where(Judgment.protocol == protocol)).all()
        texts = {g.id: g.text for g in queries.list_generations(session)}
    return {texts[j.generation_id]: j for j in rows}


def generated(request: FakeRequest) -> str:
    """Which generation a paper, upstream or two-stage request is about."""
    return re.search(r"(?:Generated recipe:\n|Predicted Answer: )(\w+ s\d)", request.prompt
                     ).group(1)


# ---------------------------------------------------------------- protocols end to end


def test_paper_protocol_scores_every_generation_and_stores_its_provenance(fake_openai, store):
    scores = {"base s1": "{'score': 4}", "base s2": "{'score': 2}",
              "base s3": "Sure! Here is my evaluation:\n```python\n{'score': 3.5}\n```",
              "tuned s1": "{'score': 5}", "tuned s2": "I cannot evaluate this.",
              "tuned s3": "{'score': 9}"}
    fake_openai.handler = lambda request: scores[generated(request)]
    fake_openai.latency_s = 0.1
    seen = []
    result = judge(store, fake_openai, protocol="paper", concurrency=6, progress=seen.append)

    stored = judgments(store, "paper")
    assert {k: (j.score, j.verdict) for k, j in stored.items()} == {
        "base s1": (4.0, "yes"), "base s2": (2.0, "no"), "base s3": (3.5, "yes"),
        "tuned s1": (5.0, "yes"), "tuned s2": (None, "unparsable"),
        "tuned s3": (None, "unparsable"),  # out of the 1-5 range: not a score
    }
    for key, row in stored.items():
        assert row.judge == "gpt-3.5-turbo" and row.prompt_version == "paper-v1"
        assert row.raw == scores[key]
    assert result.judged == 6 and result.total == 6 and result.unparsable == 2
    assert result.requests == 6 and result.skipped == 0 and not result.stopped
    assert fake_openai.max_in_flight > 1
    bodies = [r.body for r in fake_openai.chat_requests]
    assert all(b["temperature"] == 0 and b["model"] == "gpt-3.5-turbo" for b in bodies)
    # Every judge request carries the reply cap.
    assert [b["max_tokens"] for b in bodies] == [gpt.MAX_TOKENS] * 6
    first = fake_openai.chat_requests[0]
    assert first.messages[0]["content"] == prompts.PAPER_SYSTEM
    assert REFERENCES["s1"] in "".join(r.prompt for r in fake_openai.chat_requests)
    # Progress: a running count, unparsable replies, tokens and an ETA.
    assert seen[-1].done == 6 and seen[-1].unparsable == 2 and seen[-1].eta_s == 0
    assert seen[0].done == 0 and seen[0].eta_s is None
    tokens = fake_openai.usage_served()
    assert (result.tokens_in, result.tokens_out) == (seen[-1].tokens_in, seen[-1].tokens_out) \
        == tokens
    assert result.cost_usd == pytest.approx((tokens[0] * 0.50 + tokens[1] * 1.50) / 1e6)
    assert "2 unparsable of 6" in str(result)


def test_upstream_protocol_reads_the_dict_string_and_keeps_pred_as_the_verdict(
        fake_openai, store):
    replies = {"base s1": "{'pred': 'yes', 'score': 4}",
               "base s2": "{'pred': 'no', 'score': 1}",
               "base s3": "Evaluation: {'pred': 'Yes', 'score': 4.8}",
               "tuned s1": '{"pred": "no", "score": 3}',
               "tuned s2": "{'score': 3}",  # no pred
               "tuned s3": "{'pred': 'maybe', 'score': 3}"}
    fake_openai.handler = lambda request: replies[generated(request)]
    result = judge(store, fake_openai, protocol="upstream", variants=["base", "tuned"])

    stored = judgments(store, "upstream")
    assert {k: (j.score, j.verdict) for k, j in stored.items()} == {
        "base s1": (4.0, "yes"), "base s2": (1.0, "no"), "base s3": (4.8, "yes"),
        # upstream counts 'pred', not the score: a 3 with pred 'no' stays 'no'
        "tuned s1": (3.0, "no"), "tuned s2": (None, "unparsable"),
        "tuned s3": (None, "unparsable"),
    }
    assert all(j.prompt_version == "upstream-v1" for j in stored.values())
    assert result.unparsable == 2
    request = fake_openai.chat_requests[0]
    assert request.messages[0]["content"].startswith(
        "You are an intelligent chatbot designed for evaluating the correctness of generative "
        "outputs for question-answer pairs.")
    assert f"Question: {PROMPT}\nCorrect Answer: " in request.messages[1]["content"]


def test_two_stage_protocol_asks_twice_and_stores_both_scores_and_their_mean(
        fake_openai, store):
    def handler(request):
        text = generated(request)
        stage = "ingredients" if "INGREDIENTS WITH THEIR MEASUREMENTS" in request.prompt \
            else "steps"
        if text == "tuned s2" and stage == "steps":
            return "no idea"
        return {("ingredients"): "{'score': 4}", "steps": "{'score': 2}"}[stage]

    fake_openai.handler = handler
    result = judge(store, fake_openai, protocol="two-stage", variants=["tuned"])

    stored = judgments(store, "two-stage")
    assert set(stored) == {"tuned s1", "tuned s2", "tuned s3"}
    row = stored["tuned s1"]
    assert row.score == 3.0 and row.verdict == "no" and row.prompt_version == "two-stage-v1"
    assert row.details["ingredients"] == 4.0 and row.details["steps"] == 2.0
    assert json.loads(row.raw) == {"ingredients": "{'score': 4}", "steps": "{'score': 2}"}
    broken = stored["tuned s2"]
    assert broken.score is None and broken.verdict == "unparsable"
    assert broken.details["ingredients"] == 4.0 and broken.details["steps"] is None
    assert result.requests == 6 and result.judged == 3 and result.unparsable == 1


def test_pairwise_asks_both_orders_and_a_verdict_that_follows_the_position_is_a_tie(
        fake_openai, store):
    def handler(request):
        user = request.messages[1]["content"]
        a = re.search(r"Recipe A:\n(\w+ s\d)", user).group(1)
        if a.endswith("s1"):  # consistent: tuned is better in both orders
            return "A" if a.startswith("tuned") else "B"
        if a.endswith("s2"):  # always the first one shown
            return "**A**"
        return "tie"

    fake_openai.handler = handler
    seen = []
    result = judge(store, fake_openai, protocol="pairwise", pair=("base", "tuned"),
                   progress=seen.append)

    stored = judgments(store, "pairwise")
    assert set(stored) == {"base s1", "base s2", "base s3"}  # on the first variant's generation
    s1, s2, s3 = stored["base s1"], stored["base s2"], stored["base s3"]
    with session_scope(store) as session:
        tuned = {g.text: g.id for g in queries.list_generations(session)}
    assert s1.details["other_generation_id"] == tuned["tuned s1"]
    assert (s1.details["first_order"], s1.details["second_order"]) == ("B", "A")
    assert s1.details["winner"] == "tuned" and s1.details["position_flip"] is False
    assert s1.verdict == "loss" and s1.score == 0.0
    assert s2.details["winner"] == "tie" and s2.details["position_flip"] is True
    assert s2.verdict == "tie" and s2.score == 0.5
    assert s3.details["winner"] == "tie" and s3.details["position_flip"] is False
    assert json.loads(s1.raw) == {"first_order": "B", "second_order": "A"}
    assert result.requests == 6 and len(fake_openai.chat_requests) == 6
    assert result.wins == {"base": 0, "tuned": 1, "tie": 2}
    assert result.pairs_parsed == 3 and result.position_flips == 1
    assert result.position_bias_rate == pytest.approx(1 / 3)
    assert "position bias 33.3% (1 of 3 pairs)" in str(result)
    # Both orders really were asked: each generation was shown once as A and once as B.
    shown_first = [re.search(r"Recipe A:\n(\w+ s\d)", r.messages[1]["content"]).group(1)
                   for r in fake_openai.chat_requests]
    assert sorted(shown_first) == sorted(f"{v} s{i}" for v in ("base", "tuned") for i in (1, 2, 3))


def test_a_pairwise_reply_that_cannot_be_read_is_unparsable_not_a_loss(fake_openai, store):
    fake_openai.handler = lambda request: ("Both have merit; A lists more, B is tidier."
                                           if "s1" in request.prompt else "tie")
    result = judge(store, fake_openai, protocol="pairwise", pair=("tuned", "base"))
    stored = judgments(store, "pairwise")
    assert set(stored) == {"tuned s1", "tuned s2", "tuned s3"}
    assert stored["tuned s1"].verdict == "unparsable" and stored["tuned s1"].score is None
    assert stored["tuned s1"].details["winner"] is None
    assert result.unparsable == 1 and result.pairs_parsed == 2 and result.position_flips == 0


# ---------------------------------------------------------------- failures and retries


def test_rate_limits_time_outs_server_errors_and_broken_bodies_are_retried(
        fake_openai, store, monkeypatch):
    monkeypatch.setattr(gpt, "REQUEST_TIMEOUT_S", 0.3)
    fake_openai.script(rate_limited(retry_after=0.3), server_error(500), malformed_body(),
                       server_error(503), reply("{'score': 1}", delay_s=1))
    fake_openai.handler = lambda request: "{'score': 4}"
    started = time.monotonic()
    result = judge(store, fake_openai, protocol="paper", variants=["base"], concurrency=1)

    assert time.monotonic() - started >= 0.3 + 0.3  # Retry-After was honoured, then a time-out
    statuses = [r.status for r in fake_openai.chat_requests]
    # The fifth reply comes after the client gave up on it (it is still sleeping, status 0).
    assert statuses[:4] == [429, 500, 200, 503] and statuses[5:] == [200, 200, 200]
    assert result.retries == 5 and result.requests == 8 and result.judged == 3
    assert result.unparsable == 0
    assert all(j.score == 4.0 for j in judgments(store, "paper").values())


def test_a_server_that_keeps_failing_ends_the_run_with_one_message(fake_openai, store):
    fake_openai.handler = lambda request: server_error(502)
    with pytest.raises(LLMError, match=f"^{re.escape(fake_openai.base_url)} kept failing; "
                                       f"gave up after {llm.MAX_ATTEMPTS} attempts"):
        judge(store, fake_openai, protocol="paper", variants=["base"], concurrency=1)
    assert len(fake_openai.chat_requests) == llm.MAX_ATTEMPTS
    assert judgments(store, "paper") == {}


def test_without_a_key_a_remote_server_is_one_line_naming_openai_api_key(
        fake_openai, store, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMKeyError) as caught:
        judge_generations(store, eval_set=EVAL_SET, base_url="https://llm.example.com/v1")
    message = str(caught.value)
    assert message == ("no API key for https://llm.example.com/v1: set OPENAI_API_KEY (a "
                       "server on this machine needs none)")
    assert "--api-key" not in message and "\n" not in message
    assert fake_openai.requests == []


def test_the_key_and_url_come_from_the_environment(fake_openai, store, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    result = judge_generations(store, eval_set=EVAL_SET, variants=["base"])
    assert result.judged == 3
    assert fake_openai.chat_requests[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_a_local_server_that_needs_no_key_is_judged_without_one(store, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(api_key=None, handler=lambda request: "{'score': 5}") as server:
        url = server.base_url.replace("127.0.0.1", "localhost")
        result = judge_generations(store, eval_set=EVAL_SET, base_url=url, variants=["base"])
        sent = server.chat_requests
    assert result.judged == 3 and result.unparsable == 0
    # No key at all went out: neither a real one nor an invented placeholder.
    assert len(sent) == 3 and all("authorization" not in r.headers for r in sent)


def test_a_local_server_that_wants_a_key_says_to_set_openai_api_key(
        fake_openai, store, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMAuthError) as caught:
        judge_generations(store, eval_set=EVAL_SET, base_url=fake_openai.base_url,
                          concurrency=1)
    assert str(caught.value) == (f"{fake_openai.base_url} asks for an API key (401 "
                                 "Unauthorized) and none is set: set OPENAI_API_KEY")
    assert len(fake_openai.chat_requests) == 1


def test_a_rejected_key_is_one_line_naming_openai_api_key(fake_openai, store):
    with pytest.raises(LLMAuthError) as caught:
        judge(store, fake_openai, api_key="sk-wrong", concurrency=1)
    assert str(caught.value) == (f"{fake_openai.base_url} rejected the API key (401 "
                                 "Unauthorized): check OPENAI_API_KEY")
    assert len(fake_openai.chat_requests) == 1 and judgments(store, "paper") == {}
    # The one base every command prints as one line.
    assert isinstance(caught.value, UserError)


def test_no_quota_left_is_one_line_and_is_not_retried(fake_openai, store):
    fake_openai.handler = lambda request: quota_exceeded()
    with pytest.raises(LLMQuotaError) as caught:
        judge(store, fake_openai, concurrency=1)
    assert str(caught.value) == (
        "the account behind $OPENAI_API_KEY has no quota left (429 insufficient_quota at "
        f"{fake_openai.base_url}): add credit or use another key")
    assert len(fake_openai.chat_requests) == 1 and judgments(store, "paper") == {}
    assert isinstance(caught.value, UserError)


def test_a_refused_connection_names_the_base_url(store, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LLMEndpointError, match=f"^cannot reach {re.escape(url)}: .*; check "
                                               "--base-url or \\$OPENAI_BASE_URL$"):
        judge_generations(store, eval_set=EVAL_SET, base_url=url, api_key="sk-anything")


def test_a_base_url_that_is_not_http_is_one_line_before_any_work(store, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "localhost:8000/v1")
    with pytest.raises(LLMEndpointError) as caught:
        judge_generations(store, eval_set="no such set", api_key="sk-anything")
    assert str(caught.value) == ("$OPENAI_BASE_URL: expected an http(s) URL such as "
                                 "http://localhost:8000/v1, found 'localhost:8000/v1'")
    assert isinstance(caught.value, UserError)


def test_unknown_names_and_missing_generations_are_named(fake_openai, store, ddft_workspace):
    with pytest.raises(JudgeError, match="no eval set named 'nope'"):
        judge(store, fake_openai, eval_set="nope")
    with pytest.raises(JudgeError, match="no model variant named 'ghost'"):
        judge(store, fake_openai, variants=["ghost"])
    with pytest.raises(ValueError, match="pairwise protocol needs pair"):
        judge(store, fake_openai, protocol="pairwise")
    with pytest.raises(ValueError, match="unknown protocol 'vibes'"):
        judge(store, fake_openai, protocol="vibes")
    with session_scope(store) as session:
        queries.create_variant(session, name="idle", base_model="tiny")
    with pytest.raises(JudgeError, match="no generations of 'idle' on 'yc2-eval'"):
        judge(store, fake_openai, variants=["idle"])
    assert fake_openai.requests == []


# ---------------------------------------------------------------- resuming and the cache


def test_a_rerun_skips_what_is_stored_and_a_stopped_run_resumes(fake_openai, store):
    fake_openai.handler = lambda request: "{'score': 4}"
    reports = []
    first = judge(store, fake_openai, concurrency=1, progress=reports.append,
                  should_stop=lambda: len(reports) >= 3)
    assert first.stopped and first.judged == 2 and len(judgments(store, "paper")) == 2

    second = judge(store, fake_openai, concurrency=2)
    assert second.judged == 4 and second.skipped == 2 and not second.stopped
    assert len(fake_openai.chat_requests) == 6

    third = judge(store, fake_openai)
    assert third.judged == 0 and third.skipped == 6 and third.requests == 0
    assert len(fake_openai.chat_requests) == 6
    assert len(judgments(store, "paper")) == 6

    # A different judge model is a different judgment, not a skip.
    other = judge(store, fake_openai, model="gpt-4o-mini", variants=["base"])
    assert other.judged == 3 and len(fake_openai.chat_requests) == 9


def test_a_cancel_returns_promptly_while_requests_wait_out_a_retry_after(fake_openai, store):
    # Two judgments are answered; every later request is told to come back in a minute.
    answered = threading.Event()

    def handler(request):
        if request.index < 2:
            return "{'score': 4}"
        answered.set()  # both answers are out: the user cancels now
        return rate_limited(retry_after=60)

    fake_openai.handler = handler
    started = time.monotonic()
    result = judge(store, fake_openai, concurrency=4, should_stop=answered.is_set)
    assert result.stopped and result.judged == 2 and len(judgments(store, "paper")) == 2
    assert time.monotonic() - started < 30  # not the minute of Retry-After
    # A rerun judges the rest.
    fake_openai.handler = lambda request: "{'score': 3}"
    rest = judge(store, fake_openai)
    assert rest.judged == 4 and rest.skipped == 2 and not rest.stopped


def test_a_cached_reply_costs_no_request(fake_openai, store, tmp_path):
    fake_openai.handler = lambda request: "{'score': 3}"
    cache_dir = tmp_path / "cache"
    first = judge(store, fake_openai, protocol="two-stage", cache_dir=cache_dir)
    assert first.requests == 12 and first.cache_hits == 0
    assert (cache_dir / CACHE_FILE).exists()

    # The same judgments for a second store: every reply comes from the cache.
    other = open_store(tmp_path / "other-ws")
    try:
        build_store(other)
        again = judge(other, fake_openai, protocol="two-stage", cache_dir=cache_dir)
        assert again.requests == 0 and again.cache_hits == 12 and again.judged == 6
        assert (again.tokens_in, again.tokens_out, again.cost_usd) == (0, 0, 0.0)
        assert len(fake_openai.chat_requests) == 12
        rows = judgments(other, "two-stage")
        assert all(r.score == 3.0 and r.details["cached"] for r in rows.values())
    finally:
        other.dispose()

    # A changed prompt version is a different key: it asks again.
    version = PROMPT_VERSIONS["two-stage"]
    PROMPT_VERSIONS["two-stage"] = version + "-test"
    try:
        changed = judge(store, fake_openai, protocol="two-stage", variants=["base"],
                        cache_dir=cache_dir)
    finally:
        PROMPT_VERSIONS["two-stage"] = version
    assert changed.requests == 6 and changed.cache_hits == 0


def test_the_api_key_never_reaches_the_store_or_the_cache(fake_openai, store, ddft_workspace,
                                                          tmp_path):
    fake_openai.handler = lambda request: "{'pred': 'yes', 'score': 5}"
    cache_dir = tmp_path / "cache"
    judge(store, fake_openai, protocol="upstream", cache_dir=cache_dir)
    judge(store, fake_openai, protocol="pairwise", pair=("base", "tuned"), cache_dir=cache_dir)
    store.dispose()  # fold the WAL into the database file
    files = [p for p in [*ddft_workspace.rglob("*"), *cache_dir.rglob("*")] if p.is_file()]
    assert any(p.name == CACHE_FILE for p in files) and any(p.suffix == ".db" for p in files)
    for path in files:
        data = path.read_bytes()
        assert API_KEY.encode() not in data and API_KEY[:12].encode() not in data, path


# ---------------------------------------------------------------- parsing and prompts


def test_scores_are_read_tolerantly_and_never_guessed():
    assert parse_score("{'score': 4}") == 4.0
    assert parse_score('{"score": "3.5"}') == 3.5
    assert parse_score("```\n{'score': 2}\n```") == 2.0
    assert parse_score("Score: 4") == 4.0
    assert parse_score("I would give it 4 out of 5.") == 4.0
    assert parse_score("4/5") == 4.0
    assert parse_score(" 5 ") == 5.0
    assert parse_score("{'score': 0}") is None  # outside 1-5
    assert parse_score("Score: 4, or maybe score: 3") is None  # two readings
    assert parse_score("The recipes differ in 3 steps.") is None
    assert parse_score("") is None and parse_score(None) is None


def test_upstream_replies_are_read_with_literal_eval_and_a_fallback():
    assert parse_upstream("{'pred': 'yes', 'score': 4}").score == 4.0
    assert parse_upstream("{'pred': 'NO', 'score': 0}").pred == "no"
    assert parse_upstream("{'pred': 'yes', 'score': 4.8}").score == 4.8
    assert parse_upstream("{'pred': 'yes', 'score': '5'}").score == 5.0
    # A dict broken by a stray quote still has one pred and one score.
    assert parse_upstream("{'pred': 'yes', 'score': 3, 'reason': 'it's close'}").score == 3.0
    assert parse_upstream("{'pred': 'yes', 'score': 7}") is None
    assert parse_upstream("{'pred': 'perhaps', 'score': 3}") is None
    assert parse_upstream("yes, 4") is None and parse_upstream(None) is None


def test_pairwise_choices_are_read_only_when_unambiguous():
    assert parse_choice("A") == "A" and parse_choice("**B**.") == "B"
    assert parse_choice("Tie") == "tie" and parse_choice("'tie'") == "tie"
    assert parse_choice("Recipe B matches better.") == "B"
    assert parse_choice('{"better": "A"}') == "A"
    assert parse_choice("Recipe A lists more, but recipe B has the steps.") is None
    assert parse_choice("It is a tie between A and B.") is None
    assert parse_choice("Neither") is None and parse_choice("") is None


def test_every_protocol_has_a_version_and_its_prompts_are_pinned():
    # Changing a prompt's wording means bumping its version in PROMPT_VERSIONS: then update the
    # fingerprint here too.
    assert PROMPT_VERSIONS == {"paper": "paper-v1", "upstream": "upstream-v1",
                               "two-stage": "two-stage-v1", "pairwise": "pairwise-v1"}
    assert {p: prompts.prompt_fingerprint(p) for p in prompts.PROTOCOLS} == PINNED


PINNED = {"paper": "5b06e2603e0a", "upstream": "484f4d7b3b1f", "two-stage": "039bf03ff805",
          "pairwise": "0aa0256c5e63"}
