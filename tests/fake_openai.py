"""A scripted OpenAI-compatible server on 127.0.0.1 for tests, and its `fake_openai` fixture."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

API_KEY = "sk-fake-test-key-0123456789"


@dataclass
class FakeReply:
    """One scripted answer. A 200 reply wraps `content` in a chat completion with `usage`;
    any other status sends an OpenAI-style error body; `body` replaces the body outright
    (malformed JSON, an empty body)."""

    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float | None = None  # None: the server's latency_s
    usage: tuple[int, int] | None = None  # (prompt, completion); None: counted from text
    finish_reason: str = "stop"
    model: str | None = None  # None: the model the request named
    error: str = "scripted error"
    code: str | None = None  # the error body's code; None: what the status usually carries
    body: bytes | None = None


def reply(content: str | dict | list, **kwargs: Any) -> FakeReply:
    """A successful chat completion; a dict or list is sent as its JSON text."""
    if not isinstance(content, str):
        content = json.dumps(content)
    return FakeReply(content=content, **kwargs)


def rate_limited(retry_after: float | str | None = 1, **kwargs: Any) -> FakeReply:
    """A 429 whose Retry-After is a number of seconds, or a string sent as it is (an HTTP
    date); None sends no Retry-After."""
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = (retry_after if isinstance(retry_after, str)
                                  else f"{retry_after:g}")
    return FakeReply(status=429, headers=headers, error="Rate limit reached", **kwargs)


def quota_exceeded(**kwargs: Any) -> FakeReply:
    """The 429 that OpenAI sends when the account has no credit left: waiting does not help."""
    return FakeReply(status=429, code="insufficient_quota",
                     error="You exceeded your current quota, please check your plan and "
                           "billing details.", **kwargs)


def server_error(status: int = 500, **kwargs: Any) -> FakeReply:
    return FakeReply(status=status, error="The server had an error", **kwargs)


def unauthorized(**kwargs: Any) -> FakeReply:
    return FakeReply(status=401, error="Incorrect API key provided", **kwargs)


def malformed_body(**kwargs: Any) -> FakeReply:
    """A 200 whose body is not JSON at all (a proxy's error page, a cut connection)."""
    return FakeReply(status=200, body=b'{"id": "chatcmpl-broken", "choices": [', **kwargs)


@dataclass
class FakeRequest:
    """What a client sent, as the request log keeps it."""

    index: int
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or the raw text when it is not JSON
    received_at: float
    status: int = 0  # what the server answered
    usage: tuple[int, int] | None = None  # what a 200 chat completion reported

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", []) if isinstance(self.body, dict) else []

    @property
    def prompt(self) -> str:
        """All message texts joined, for handlers that answer by what was asked."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)

    @property
    def model(self) -> str:
        return self.body.get("model", "") if isinstance(self.body, dict) else ""


Handler = Callable[[FakeRequest], FakeReply | str | dict | list]


def _count_tokens(text: str) -> int:
    return max(1, len(text.split()))


class FakeOpenAI:
    """POST /v1/chat/completions answered from a queue of scripted replies, then by `handler`
    (default: "ok"); GET /v1/models lists `models`. Every request is logged in `requests`.

    `latency_s` delays every reply unless it names its own delay; `api_key`, when set, makes
    any other bearer token get a 401 like the real service.
    """

    def __init__(self, *, handler: Handler | None = None, latency_s: float = 0.0,
                 api_key: str | None = None, models: tuple[str, ...] = ("gpt-3.5-turbo",)):
        self.handler = handler
        self.latency_s = latency_s
        self.api_key = api_key
        self.models = models
        self.models_status = 200  # what GET /models answers; another status sends an error
        self.requests: list[FakeRequest] = []
        self.errors: list[Exception] = []  # exceptions raised by `handler`
        self.in_flight = 0
        self.max_in_flight = 0  # the most chat completions being answered at one time
        self._queue: deque[FakeReply] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # scripting -------------------------------------------------------------------------------

    def script(self, *replies: FakeReply | str | dict | list) -> None:
        """Queue replies for the next chat completions, in order, before the handler takes over."""
        with self._lock:
            self._queue.extend(_as_reply(r) for r in replies)

    @property
    def chat_requests(self) -> list[FakeRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def usage_served(self) -> tuple[int, int]:
        """Prompt and completion tokens reported in all successful chat completions."""
        served = [r.usage for r in self.chat_requests if r.usage]
        return sum(u[0] for u in served), sum(u[1] for u in served)

    # lifetime --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> FakeOpenAI:
        self._server = _QuietServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        # Teardown must not wait for a handler sleeping on a scripted delay.
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="fake-openai")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # serving ---------------------------------------------------------------------------------

    def _log(self, request: FakeRequest) -> FakeRequest:
        with self._lock:
            request.index = len(self.requests)
            self.requests.append(request)
        return request

    def _next_reply(self, request: FakeRequest) -> FakeReply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.handler is None:
            return FakeReply(content="ok")
        return _as_reply(self.handler(request))

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._closing.wait(seconds)

    def _chat_body(self, request: FakeRequest, scripted: FakeReply) -> dict[str, Any]:
        content = scripted.content or ""
        usage = scripted.usage or (_count_tokens(request.prompt), _count_tokens(content))
        request.usage = usage
        return {
            "id": f"chatcmpl-fake{request.index:05d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": scripted.model or request.model or "fake-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": scripted.finish_reason,
                "logprobs": None,
            }],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]},
        }


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is what some tests script; stay silent about it.
        pass


def _as_reply(value: FakeReply | str | dict | list) -> FakeReply:
    return value if isinstance(value, FakeReply) else reply(value)


def _error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    kind = {401: "invalid_request_error", 404: "invalid_request_error", 429: "requests",
            }.get(status, "server_error" if status >= 500 else "invalid_request_error")
    if code == "insufficient_quota":
        kind = code
    code = code or {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _make_handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 5  # an idle keep-alive connection frees its thread

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _read_body(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                return json.loads(raw) if raw else None
            except ValueError:
                return raw.decode("utf-8", "replace")

        def _send(self, status: int, body: bytes | dict, headers: dict[str, str]) -> None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _request(self, body: Any) -> FakeRequest:
            return fake._log(FakeRequest(index=0, method=self.command, path=self.path,
                                         headers={k.lower(): v for k, v in self.headers.items()},
                                         body=body,
                                         received_at=time.monotonic()))

        def _authorised(self, request: FakeRequest) -> bool:
            if fake.api_key is None:
                return True
            if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                return True
            request.status = 401
            self._send(401, _error_body(401, "Incorrect API key provided"), {})
            return False

        def do_GET(self) -> None:
            request = self._request(None)
            if not self._authorised(request):
                return
            if self.path.rstrip("/").endswith("/models") and fake.models_status != 200:
                request.status = fake.models_status  # a server or key without the model list
                self._send(fake.models_status, _error_body(fake.models_status, "no model list"),
                           {})
            elif self.path.rstrip("/").endswith("/models"):
                request.status = 200
                self._send(200, {"object": "list", "data": [
                    {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                    for m in fake.models]}, {})
            else:
                request.status = 404
                self._send(404, _error_body(404, f"no route {self.path}"), {})

        def do_POST(self) -> None:
            request = self._request(self._read_body())
            if not self._authorised(request):
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                request.status = 404
                self._send(404, _error_body(404, f"no route {self.path}"), {})
                return
            with fake._lock:
                fake.in_flight += 1
                fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
            try:
                try:
                    scripted = fake._next_reply(request)
                except Exception as exc:  # a broken test handler shows as a 500 and in errors
                    fake.errors.append(exc)
                    scripted = server_error(error=f"fake handler failed: {exc!r}")
                fake._wait(fake.latency_s if scripted.delay_s is None else scripted.delay_s)
            finally:
                with fake._lock:
                    fake.in_flight -= 1
            request.status = scripted.status
            if scripted.body is not None:
                self._send(scripted.status, scripted.body, scripted.headers)
            elif scripted.status == 200:
                self._send(200, fake._chat_body(request, scripted), scripted.headers)
            else:
                self._send(scripted.status,
                           _error_body(scripted.status, scripted.error, scripted.code),
                           scripted.headers)

    return Handler


@pytest.fixture(name="fake_openai")
def fake_openai_server(monkeypatch):
    """A running FakeOpenAI that expects API_KEY; OPENAI_* variables from the environment are
    cleared so that nothing reaches a real service. A test module takes it in with
    `from tests.fake_openai import fake_openai_server  # noqa: F401`; the function is named
    apart from the fixture so that test arguments called `fake_openai` shadow nothing."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    with FakeOpenAI(api_key=API_KEY) as fake:
        yield fake
