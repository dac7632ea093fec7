"""The one LLM client (engine.llm) through the real openai client against a scripted local
server: Retry-After, one-line errors, keyless local servers, cancellation, token counts."""

from __future__ import annotations

import threading
import time
from email.utils import formatdate

import pytest

from db.errors import UserError
from engine import llm
from engine.llm import (
    ChatClient,
    Endpoint,
    LLMAuthError,
    LLMEndpointError,
    LLMKeyError,
    LLMQuotaError,
    Usage,
    backoff_delay,
    is_local,
    resolve_endpoint,
    run_pool,
)
from tests.fake_openai import (
    API_KEY,
    FakeOpenAI,
    fake_openai_server,  # noqa: F401
    quota_exceeded,
    rate_limited,
    reply,
)

MESSAGES = [{"role": "user", "content": "Say ok."}]


@pytest.fixture(autouse=True)
def slow_backoff(monkeypatch):
    """Exponential back-off of minutes: a wait of under a minute can only be a Retry-After."""
    monkeypatch.setattr(llm, "BACKOFF_BASE_S", 100.0)


def client_for(fake: FakeOpenAI, *, key: str | None = API_KEY, **kwargs) -> ChatClient:
    return ChatClient(model="gpt-3.5-turbo", endpoint=Endpoint(fake.base_url, key),
                      timeout_s=10, **kwargs)


def gap(fake: FakeOpenAI, first: int, second: int) -> float:
    """Seconds between the server receiving two chat requests."""
    sent = fake.chat_requests
    return sent[second].received_at - sent[first].received_at


# ---------------------------------------------------------------- retries


def test_retry_after_in_seconds_is_waited_out_instead_of_the_back_off(fake_openai):
    fake_openai.script(rate_limited(retry_after=0.4), reply("ok", usage=(7, 2)))
    client = client_for(fake_openai)
    try:
        done = client.complete(MESSAGES, temperature=0)
    finally:
        client.close()
    assert done.content == "ok" and done.requests == 2 and done.retries == 1
    assert [r.status for r in fake_openai.chat_requests] == [429, 200]
    # At least the 0.4 s asked for; far under the 100 s back-off that would follow otherwise.
    assert 0.4 <= gap(fake_openai, 0, 1) < 50


def test_retry_after_as_an_http_date_is_honoured(fake_openai):
    # HTTP dates have whole seconds: two seconds ahead is at least one second away.
    when = formatdate(time.time() + 2, usegmt=True)
    fake_openai.script(rate_limited(retry_after=when), reply("ok"))
    client = client_for(fake_openai)
    try:
        done = client.complete(MESSAGES, temperature=0)
    finally:
        client.close()
    assert done.content == "ok" and done.retries == 1
    assert 1.0 <= gap(fake_openai, 0, 1) < 50


def test_back_off_grows_with_jitter_and_retry_after_is_a_floor_with_a_ceiling(monkeypatch):
    monkeypatch.setattr(llm, "BACKOFF_BASE_S", 1.0)
    for failures in (1, 2, 3):
        base = llm.BACKOFF_BASE_S * 2 ** (failures - 1)
        delays = {backoff_delay(failures) for _ in range(50)}
        assert all(0.75 * base <= d <= 1.25 * base for d in delays) and len(delays) > 1
    assert all(3.0 <= backoff_delay(1, 3.0) <= 3.75 for _ in range(50))
    assert backoff_delay(1, -5.0) == 0.0  # a date already past: go now
    assert backoff_delay(1, 10_000) <= llm.MAX_RETRY_AFTER_S * 1.25
    assert backoff_delay(9) <= llm.BACKOFF_MAX_S * 1.25


# ---------------------------------------------------------------- errors in one line


def test_a_401_is_one_line_naming_openai_api_key(fake_openai):
    client = client_for(fake_openai, key="sk-wrong")
    with pytest.raises(LLMAuthError) as caught:
        client.complete(MESSAGES, temperature=0)
    client.close()
    message = str(caught.value)
    assert message == (f"{fake_openai.base_url} rejected the API key (401 Unauthorized): "
                       "check OPENAI_API_KEY")
    assert isinstance(caught.value, UserError) and len(fake_openai.chat_requests) == 1


def test_no_quota_is_one_line_and_stops_at_once(fake_openai):
    fake_openai.script(quota_exceeded(), reply("never asked"))
    client = client_for(fake_openai)
    with pytest.raises(LLMQuotaError) as caught:
        client.complete(MESSAGES, temperature=0)
    client.close()
    assert "no quota left (429 insufficient_quota" in str(caught.value)
    assert "\n" not in str(caught.value) and isinstance(caught.value, UserError)
    assert len(fake_openai.chat_requests) == 1


def test_the_endpoint_and_key_are_resolved_with_the_local_rule(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    for url in ("http://localhost:8000/v1", "http://127.0.0.1:11434/v1", "http://[::1]:8080/v1",
                "http://127.0.0.2/v1", "http://vllm.localhost/v1"):
        assert is_local(url) and resolve_endpoint(url).key is None, url
    for url in ("https://api.openai.com/v1", "http://10.0.0.5:8000/v1",
                "http://localhost.example.com/v1"):
        assert not is_local(url), url
        with pytest.raises(LLMKeyError, match="set OPENAI_API_KEY"):
            resolve_endpoint(url)
    with pytest.raises(LLMKeyError, match="^no API key for https://api.openai.com/v1: set "
                                          "OPENAI_API_KEY"):
        resolve_endpoint()
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    endpoint = resolve_endpoint("http://localhost:8000/v1")
    assert endpoint.key == API_KEY and API_KEY not in repr(endpoint)  # a set key is sent
    for bad in ("localhost:8000/v1", "ftp://host/v1", "http:///v1", "http://host:port/v1"):
        with pytest.raises(LLMEndpointError, match="expected an http\\(s\\) URL"):
            resolve_endpoint(bad)


def test_a_keyless_local_server_gets_no_authorization_header(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI(api_key=None) as server:
        client = ChatClient(model="local-llama", endpoint=resolve_endpoint(server.base_url),
                            timeout_s=10)
        try:
            done = client.complete(MESSAGES, temperature=0)
        finally:
            client.close()
        headers = server.chat_requests[0].headers
    assert done.content == "ok" and "authorization" not in headers


# ---------------------------------------------------------------- the pool


def test_a_cancel_stops_the_pool_promptly_and_keeps_what_finished(fake_openai):
    # The first two requests are answered; every other one is told to come back in a minute.
    fake_openai.handler = lambda request: ("ok" if request.index < 2
                                           else rate_limited(retry_after=60))
    client = client_for(fake_openai)
    items = iter(range(100))
    kept: list = []
    cancel = threading.Event()

    def finished(results: list) -> None:
        kept.extend(r for r in results if r.content is not None)
        if len(kept) >= 2:
            cancel.set()

    taken_after_cancel = []

    def next_item(in_flight: int):
        if cancel.is_set():
            taken_after_cancel.append(in_flight)
        return next(items, None)

    started = time.monotonic()
    try:
        cancelled = run_pool(next_item=next_item,
                             work=lambda i: client.complete(MESSAGES, temperature=0),
                             on_done=finished, concurrency=4, stopping=client.stopping,
                             should_stop=cancel.is_set)
    finally:
        client.close()
    assert cancelled and [k.content for k in kept] == ["ok", "ok"]
    # Nothing started after the cancel (the two answered, at most four in flight, no retry),
    # and the minute-long Retry-After of the others was not sat out.
    assert taken_after_cancel == [] and len(fake_openai.chat_requests) <= 2 + 4
    assert time.monotonic() - started < 30


def test_the_pool_never_has_more_than_concurrency_in_flight_and_sums_usage(fake_openai):
    fake_openai.latency_s = 0.05
    fake_openai.handler = lambda request: reply("ok", usage=(10 + request.index, 3))
    client = client_for(fake_openai)
    items = iter(range(12))
    total = Usage()

    def finished(results: list) -> None:
        nonlocal total
        for done in results:
            total = total + done.usage

    try:
        cancelled = run_pool(next_item=lambda in_flight: next(items, None),
                             work=lambda i: client.complete(MESSAGES, temperature=0,
                                                            max_tokens=16),
                             on_done=finished, concurrency=3, stopping=client.stopping)
    finally:
        client.close()
    assert not cancelled and fake_openai.max_in_flight <= 3
    assert (total.tokens_in, total.tokens_out) == fake_openai.usage_served() == (
        sum(10 + i for i in range(12)), 36)
    assert {r.body["max_tokens"] for r in fake_openai.chat_requests} == {16}


def test_a_worker_error_stops_the_pool_and_is_raised_after_the_others(fake_openai):
    fake_openai.script(quota_exceeded())
    fake_openai.latency_s = 0.05
    client = client_for(fake_openai)
    items = iter(range(50))
    results: list = []
    with pytest.raises(LLMQuotaError):
        run_pool(next_item=lambda in_flight: next(items, None),
                 work=lambda i: client.complete(MESSAGES, temperature=0),
                 on_done=results.extend, concurrency=2, stopping=client.stopping)
    client.close()
    # The other request in flight was kept; nothing new started after the error.
    assert len(fake_openai.chat_requests) <= 3 and len(results) <= 2
