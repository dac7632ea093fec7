"""Question generation through the real openai client against a scripted local server."""

from __future__ import annotations

import itertools
import json
import random
import re
import socket
import time

import pytest

from db import queries
from db.store import session_scope
from db.errors import UserError
from engine import llm, questions
from engine.importers.base import apply_plan
from engine.questions import (
    PROMPT_VERSION,
    QuestionError,
    QuestionIndex,
    content_words,
    generate_questions,
    normalise_question,
    parse_pairs,
    questions_plan,
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


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    """Exponential back-off in milliseconds; Retry-After is still honoured as sent."""
    monkeypatch.setattr(llm, "BACKOFF_BASE_S", 0.01)


class NumberedPairs:
    """A handler that answers each request with `count` new pairs, unique across the session."""

    def __init__(self, count: int):
        self.count = count
        self.serial = itertools.count(1)
        self.topics: list[str] = []

    def __call__(self, request: FakeRequest) -> dict:
        topic = re.search(r" about (.+?), each", request.prompt).group(1)
        self.topics.append(topic)
        pairs = []
        for _ in range(self.count):
            k = next(self.serial)
            question = f"How do I handle case {k} and variant {k * 7919} of {topic}?"
            pairs.append({"question": question, "answer": f"Answer {k}: do it carefully."})
        return {"pairs": pairs}


def run(fake, out_dir, **kwargs):
    kwargs.setdefault("api_key", API_KEY)
    return generate_questions(out_dir=out_dir, base_url=fake.base_url, **kwargs)


def stored(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / "questions.jsonl").read_text().splitlines()]


def test_a_run_reaches_n_unique_questions_with_provenance_and_concurrent_requests(
        fake_openai, tmp_path):
    fake_openai.handler = NumberedPairs(10)
    fake_openai.latency_s = 0.1
    seen = []
    result = run(fake_openai, tmp_path, n=60, per_request=10, concurrency=4, progress=seen.append)

    rows = stored(tmp_path)
    assert len(rows) == 60 == result.accepted and result.complete and not result.stopped
    assert len({normalise_question(r["question"]) for r in rows}) == 60
    assert {r["model"] for r in rows} == {"gpt-3.5-turbo"}
    assert {r["prompt_version"] for r in rows} == {PROMPT_VERSION}
    assert all(r["topic"] and r["request_id"].startswith("chatcmpl-") and r["created"]
               for r in rows)
    # Exactly what was needed was asked for, four at a time, each on its own topic.
    assert result.requests == len(fake_openai.chat_requests) == 6
    assert fake_openai.max_in_flight == 4
    assert len(set(fake_openai.handler.topics)) == 6
    body = fake_openai.chat_requests[0].body
    assert body["model"] == "gpt-3.5-turbo" and body["temperature"] == pytest.approx(0.9)
    # Twenty answers need thousands of tokens: no judge-sized cap here.
    assert "max_tokens" not in body
    assert [p.accepted for p in seen] == [10, 20, 30, 40, 50, 60]
    assert seen[-1].eta_s == 0 and all(p.target == 60 for p in seen)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["target"] == 60 and state["requests"] == 6
    assert state["prompt_version"] == PROMPT_VERSION and state["model"] == "gpt-3.5-turbo"


def test_duplicates_and_near_duplicates_are_dropped_and_counted(fake_openai, tmp_path):
    fake_openai.script(
        {"pairs": [
            {"question": "How do I sharpen a chef's knife?", "answer": "Use a whetstone."},
            {"question": "how do I SHARPEN a chefs knife", "answer": "Same, shouted."},
            {"question": "What is the best way to store fresh herbs?", "answer": "Damp towel."},
            {"question": "What's the best way to store fresh herbs?", "answer": "Near copy."},
            {"question": "How long should I boil an egg?", "answer": "Nine minutes."},
        ]},
        {"pairs": [
            {"question": "How long do I boil eggs?", "answer": "Near copy across requests."},
            {"question": "Why should I salt pasta water?", "answer": "Flavour."},
            {"question": "When should I salt pasta water?", "answer": "Once it boils."},
            {"question": "How do I sharpen a chef's knife?", "answer": "Exact copy."},
            {"question": "How do I cook brown rice?", "answer": "More water, longer."},
        ]},
    )
    result = run(fake_openai, tmp_path, n=6, per_request=5, concurrency=1)

    questions_kept = [r["question"] for r in stored(tmp_path)]
    assert questions_kept == [
        "How do I sharpen a chef's knife?", "What is the best way to store fresh herbs?",
        "How long should I boil an egg?", "Why should I salt pasta water?",
        "When should I salt pasta water?", "How do I cook brown rice?",
    ]
    assert result.duplicates == 4 and result.accepted == 6 and result.requests == 2


def test_rate_limits_time_outs_and_server_errors_are_retried_and_counted(
        fake_openai, tmp_path, monkeypatch):
    monkeypatch.setattr(questions, "REQUEST_TIMEOUT_S", 0.3)
    fake_openai.script(rate_limited(retry_after=1), server_error(500), server_error(503),
                       reply("too late", delay_s=2))
    fake_openai.handler = NumberedPairs(10)
    started = time.monotonic()
    result = run(fake_openai, tmp_path, n=10, per_request=10, concurrency=1)

    assert time.monotonic() - started >= 1.0 + 0.3  # Retry-After: 1 was honoured
    statuses = [r.status for r in fake_openai.chat_requests]
    # The fourth reply comes after the client gave up on it (it is still sleeping, status 0).
    assert len(statuses) == 5 and statuses[:3] == [429, 500, 503] and statuses[4] == 200
    assert result.retries == 4 and result.requests == 1 and result.accepted == 10
    assert "too late" not in (tmp_path / "questions.jsonl").read_text()


def test_a_server_that_keeps_failing_ends_the_run_with_one_message(fake_openai, tmp_path):
    fake_openai.handler = lambda request: server_error(502)
    with pytest.raises(LLMError, match=f"{re.escape(fake_openai.base_url)} kept failing; "
                                       f"gave up after {llm.MAX_ATTEMPTS} attempts"):
        run(fake_openai, tmp_path, n=10, per_request=10, concurrency=1)
    assert len(fake_openai.chat_requests) == llm.MAX_ATTEMPTS


def test_malformed_replies_are_counted_and_asked_again_without_crashing(fake_openai, tmp_path):
    fake_openai.script(
        "Sure! Here are some questions: not json {",
        malformed_body(),
        {"pairs": [{"question": "A question without its answer?"}]},
        # The first request gave up after three malformed replies; the second gets a fenced
        # reply with one good pair and one that lacks its answer.
        '```json\n{"pairs": [{"question": "Is a fenced reply read?", "answer": "Yes."},'
        ' {"answer": "orphan"}]}\n```',
    )
    fake_openai.handler = NumberedPairs(10)
    result = run(fake_openai, tmp_path, n=11, per_request=10, concurrency=1)

    rows = stored(tmp_path)
    assert rows[0]["question"] == "Is a fenced reply read?"
    assert result.accepted == 11 and len(rows) == 11
    assert result.malformed == 3 + 1 and result.retries == 2


def test_a_reply_cut_short_keeps_its_whole_pairs():
    text = ('{"pairs": [{"question": "Q one?", "answer": "A one."}, '
            '{"question": "Q two?", "answer": "A tw')
    pairs, _, well_formed = parse_pairs(text)
    assert pairs == [("Q one?", "A one.")] and not well_formed
    assert parse_pairs("[]")[0] == [] and parse_pairs(None)[0] == []


def test_a_model_that_never_follows_the_format_stops_the_run_with_one_message(
        fake_openai, tmp_path, monkeypatch):
    monkeypatch.setattr(questions, "STALL_LIMIT", 2)
    fake_openai.handler = lambda request: "I cannot do that."
    with pytest.raises(QuestionError, match="not the JSON asked for.*I cannot do that"):
        run(fake_openai, tmp_path, n=10, per_request=10, concurrency=1)
    assert len(fake_openai.chat_requests) == 2 * questions.MAX_MALFORMED


def test_an_interrupted_run_resumes_to_n_without_repeats_and_ignores_a_torn_last_line(
        fake_openai, tmp_path):
    handler = fake_openai.handler = NumberedPairs(10)
    first = run(fake_openai, tmp_path, n=40, per_request=10, concurrency=2, max_requests=2)
    assert first.stopped and not first.complete and first.accepted == 20
    path = tmp_path / "questions.jsonl"
    with open(path, "a") as handle:  # a crash in the middle of a write
        handle.write('{"question": "Half written?", "ans')

    second = run(fake_openai, tmp_path, n=40, per_request=10, concurrency=2)

    rows = stored(tmp_path)
    assert second.complete and second.added == 20 and len(rows) == 40
    assert len({r["question"] for r in rows}) == 40
    assert "Half written" not in path.read_text()
    assert second.requests == 4 and second.requests_this_run == 2
    # The second run went on to new topics instead of asking the first ones again.
    assert len(set(handler.topics)) == 4


def test_should_stop_ends_the_run_cleanly_after_the_requests_in_flight(fake_openai, tmp_path):
    fake_openai.handler = NumberedPairs(5)
    fake_openai.latency_s = 0.05
    reports = []

    def stop_after_two() -> bool:
        return len(reports) >= 2

    result = run(fake_openai, tmp_path, n=100, per_request=5, concurrency=2,
                 progress=reports.append, should_stop=stop_after_two)
    assert result.stopped and not result.complete
    assert result.accepted == len(stored(tmp_path)) == 5 * result.requests
    assert 2 <= result.requests <= 3

    again = run(fake_openai, tmp_path, n=20, per_request=5, concurrency=2)
    assert again.complete and len(stored(tmp_path)) == 20


def test_the_api_key_never_reaches_the_output_folder(fake_openai, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    fake_openai.handler = NumberedPairs(10)
    result = generate_questions(n=20, out_dir=tmp_path, base_url=fake_openai.base_url,
                                per_request=10, concurrency=2)
    assert result.complete
    assert fake_openai.chat_requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {"questions.jsonl", "state.json"}
    for path in files:
        assert API_KEY.encode() not in path.read_bytes()
        assert API_KEY[:12].encode() not in path.read_bytes()


def test_no_key_for_a_remote_server_is_one_line_naming_openai_api_key(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMKeyError, match="^no API key for https://llm.example.com/v1: set "
                                          "OPENAI_API_KEY"):
        generate_questions(n=5, out_dir=tmp_path / "q", base_url="https://llm.example.com/v1")
    assert not (tmp_path / "q").exists()


def test_a_local_server_that_needs_no_key_gets_none(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(api_key=None, handler=NumberedPairs(10)) as server:
        result = generate_questions(n=10, out_dir=tmp_path, base_url=server.base_url,
                                    per_request=10, concurrency=1)
        sent = server.chat_requests
    assert result.complete and len(sent) == 1 and "authorization" not in sent[0].headers


def test_a_rejected_key_is_one_line_naming_openai_api_key(fake_openai, tmp_path):
    with pytest.raises(LLMAuthError, match=r"rejected the API key \(401 Unauthorized\): check "
                                           "OPENAI_API_KEY$"):
        run(fake_openai, tmp_path, n=5, api_key="sk-wrong")
    assert len(fake_openai.chat_requests) == 1


def test_no_quota_left_is_one_line_and_is_not_retried(fake_openai, tmp_path):
    fake_openai.script(quota_exceeded())
    with pytest.raises(LLMQuotaError, match="has no quota left") as caught:
        run(fake_openai, tmp_path, n=5, concurrency=1)
    assert isinstance(caught.value, UserError) and "\n" not in str(caught.value)
    assert len(fake_openai.chat_requests) == 1


def test_a_refused_connection_names_the_base_url(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(LLMEndpointError, match=f"cannot reach {re.escape(url)}"):
        generate_questions(n=5, out_dir=tmp_path, base_url=url, api_key="sk-anything")


def test_tokens_and_cost_follow_the_usage_the_server_reports(fake_openai, tmp_path):
    numbered = NumberedPairs(10)
    fake_openai.handler = lambda request: reply(numbered(request), usage=(1000, 3000))
    fake_openai.script(rate_limited(retry_after=0))  # a refused request reports no usage
    result = run(fake_openai, tmp_path, n=30, per_request=10, concurrency=3)

    assert (result.tokens_in, result.tokens_out) == fake_openai.usage_served() == (3000, 9000)
    assert result.cost_usd == pytest.approx((3000 * 0.50 + 9000 * 1.50) / 1e6)
    state = json.loads((tmp_path / "state.json").read_text())
    assert (state["tokens_in"], state["tokens_out"]) == (3000, 9000)

    other = run(fake_openai, tmp_path / "other", n=10, per_request=10, model="local-llama")
    assert other.tokens_in == 1000 and other.cost_usd is None


def test_stored_questions_import_as_one_text_dataset_with_provenance(
        fake_openai, tmp_path, ddft_store):
    fake_openai.handler = NumberedPairs(10)
    run(fake_openai, tmp_path, n=30, per_request=10, concurrency=3)

    plan = questions_plan(tmp_path)
    assert not plan.problems
    [summary] = apply_plan(ddft_store, plan)
    assert summary.imported == 30
    with session_scope(ddft_store) as session:
        dataset = queries.get_dataset(session, name="cooking-questions")
        assert dataset.modality == "text" and dataset.source == "questions"
        samples = queries.list_samples(session, dataset_id=dataset.id, limit=100)
        assert len(samples) == 30 and {s.modality for s in samples} == {"text"}
        assert {s.meta["model"] for s in samples} == {"gpt-3.5-turbo"}
        assert {s.meta["prompt_version"] for s in samples} == {PROMPT_VERSION}
        assert all(s.meta["topic"] and s.prompt.startswith("How do I") for s in samples)
    # The ids are stable: importing again adds nothing.
    assert apply_plan(ddft_store, questions_plan(tmp_path))[0].skipped == 30


def test_unreadable_lines_are_problems_with_their_line_and_a_torn_last_line_is_not(tmp_path):
    good = {"question": "How hot should oil be for frying?", "answer": "About 180 °C.",
            "model": "gpt-3.5-turbo", "prompt_version": PROMPT_VERSION, "topic": "frying"}
    (tmp_path / "questions.jsonl").write_text(
        json.dumps(good) + "\nnot json\n" + json.dumps({"question": "No answer?"}) + "\n"
        + '{"question": "torn')
    plan = questions_plan(tmp_path)
    assert [(p.line, p.file.endswith("questions.jsonl")) for p in plan.problems] == [
        (2, True), (3, True)]
    assert "question and an answer" in str(plan.problems[1])
    assert len(plan.datasets[0].samples) == 1 and len(plan.left_out) == 1
    assert questions_plan(tmp_path / "missing").problems


def test_the_index_finds_every_near_duplicate_that_brute_force_finds():
    rng = random.Random(0)
    vocabulary = [f"w{i}" for i in range(60)]
    texts: list[str] = []
    for _ in range(800):
        if texts and rng.random() < 0.5:  # an earlier text with one word added, dropped or swapped
            words = texts[rng.randrange(len(texts))].split()
            change = rng.choice(("add", "drop", "swap"))
            if change != "add" and len(words) > 1:
                words.pop(rng.randrange(len(words)))
            if change != "drop":
                words.append(rng.choice(vocabulary))
            texts.append(" ".join(words))
        else:
            texts.append(" ".join(rng.sample(vocabulary, rng.randint(3, 12))))
    index = QuestionIndex(threshold=0.8)
    kept: list[frozenset[str]] = []
    for text in texts:
        words = content_words(normalise_question(text))
        expected = any(len(words & o) / len(words | o) >= 0.8 for o in kept)
        assert (index.add(text) is not None) == expected, text
        if not expected:
            kept.append(words)
    assert 0 < len(index) < len(texts)
    assert sum(1 for t in texts if index.match(t) == "near") > 100
