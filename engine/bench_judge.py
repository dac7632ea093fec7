"""`ddft bench judge`: the GPT judge against a local OpenAI-compatible server that answers slowly, fresh and cached."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from engine.bench import Timing

FRESH_TARGET_S = 15.0  # issue 5: 408 judgments at concurrency 16 against a 200 ms server
CACHED_TARGET_S = 1.0  # issue 5: a re-run whose every answer is in the cache
EVAL_SET = "bench-eval"
VARIANT = "bench-variant"
# Never a real key: the server below accepts anything, and the user's key must not be read.
DUMMY_API_KEY = "sk-ddft-bench-dummy"
REPLY = "{'score': 4}"


class _ScoreHandler(BaseHTTPRequestHandler):
    """POST /v1/chat/completions: after the server's latency, a chat completion whose content
    is a paper-protocol score, with usage. Anything else: 404."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        server: JudgeBenchServer = self.server.bench  # type: ignore[attr-defined]
        time.sleep(server.latency_s)
        server.count()
        prompt_tokens = sum(len(str(m.get("content", "")).split())
                            for m in body.get("messages", []))
        self._send(200, {
            "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model", "gpt-3.5-turbo"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": REPLY}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5,
                      "total_tokens": prompt_tokens + 5},
        })

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a benchmark's output is its numbers, not one line per request


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default backlog of 5 would refuse a burst of 16 connections


class JudgeBenchServer:
    """The scoring server on 127.0.0.1 at an ephemeral port, in a background thread."""

    def __init__(self, *, latency_s: float):
        self.latency_s = latency_s
        self.requests = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _ScoreHandler)
        self._server.bench = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="bench-judge-server", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address[:2]  # type: ignore[return-value]

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/v1"

    def count(self) -> None:
        with self._lock:
            self.requests += 1

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def judge_bench_server(*, latency_s: float) -> Iterator[JudgeBenchServer]:
    """A started JudgeBenchServer, stopped on leaving."""
    server = JudgeBenchServer(latency_s=latency_s)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def build_judge_store(path: Path, *, samples: int) -> Any:
    """A store at `path` with the eval set EVAL_SET of `samples` video samples, each with a
    reference recipe, and the variant VARIANT with one generation per sample. The texts depend
    only on the index, so two stores built alike ask the judge the same questions."""
    from db import queries
    from db.store import open_store, session_scope
    from engine.generate import decoding_params

    db_engine = open_store(url=f"sqlite:///{path}")
    decoding = decoding_params()
    with session_scope(db_engine) as session:
        dataset = queries.get_or_create_dataset(session, name=EVAL_SET, modality="video",
                                                purpose="eval")
        queries.add_samples(session, dataset_id=dataset.id, samples=(
            {"external_id": f"v{i:04d}", "modality": "video", "split": "test",
             "media_path": f"/videos/v{i:04d}.mp4",
             "prompt": "Write the recipe for the dish cooked in this video.",
             "answer": (f"Dish: Soup number {i}\nIngredients:\n- {i % 7 + 1} cups stock\n"
                        f"- {i % 5 + 1} carrots\nSteps:\n1. Simmer for {10 + i % 30} minutes.\n"
                        "2. Season and serve.")}
            for i in range(samples)))
        variant = queries.create_variant(session, name=VARIANT, base_model="bench")
        for sample in queries.list_samples(session, dataset_id=dataset.id, limit=None):
            queries.add_generation(
                session, variant_id=variant.id, sample_id=sample.id, prompt=sample.prompt,
                text=f"Dish: Soup\nIngredients:\n- stock\nSteps:\n1. Simmer ({sample.external_id}).",
                params_key=f"bench-{sample.external_id}", decoding=decoding, n_tokens=20)
    return db_engine


@dataclass
class JudgeBenchResult:
    timings: list[Timing] = field(default_factory=list)
    runs: list[Any] = field(default_factory=list)  # the JudgeRun of each timed run, in order
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [*self.notes, *(t.line() for t in self.timings)]


def bench_judge(
    *,
    judgments: int = 408,
    latency_s: float = 0.2,
    concurrency: int = 16,
    progress: Callable[[str], None] | None = None,
) -> JudgeBenchResult:
    """Time `judge_generations` (paper protocol) on `judgments` generations against a local
    server that answers every request after `latency_s`: first with an empty cache, then into a
    fresh store from the same cache (every answer cached, no request), then again on that store
    (everything stored: skipped before any request).

    Raises engine.llm.LLMError or JudgeError when a run fails, RuntimeError when a run does not
    do what it is timed for (a cached re-run that sends requests, a run that judges too few).
    """
    from engine.judge.gpt import judge_generations

    say = progress or (lambda message: None)
    result = JudgeBenchResult()
    with tempfile.TemporaryDirectory(prefix="ddft-bench-judge-") as tmp, \
            judge_bench_server(latency_s=latency_s) as server:
        folder = Path(tmp)
        cache = folder / "cache"

        def run(db_engine: Any) -> tuple[Any, float]:
            start = time.perf_counter()
            done = judge_generations(db_engine, eval_set=EVAL_SET, protocol="paper",
                                     base_url=server.base_url, api_key=DUMMY_API_KEY,
                                     concurrency=concurrency, cache_dir=cache)
            return done, time.perf_counter() - start

        say(f"building a store with {judgments} samples and generations (not timed)")
        first_store = build_judge_store(folder / "first.db", samples=judgments)
        say(f"judging {judgments} generations, empty cache, server at {server.base_url} "
            f"answering in {latency_s * 1000:.0f} ms, concurrency {concurrency}")
        fresh, fresh_s = run(first_store)
        if fresh.judged != judgments or server.requests != judgments:
            raise RuntimeError(f"first run: {fresh.judged} judged with {server.requests} "
                               f"requests, expected {judgments} of each")
        result.timings.append(Timing(
            f"judge {judgments} generations, empty cache (concurrency {concurrency}, "
            f"{latency_s * 1000:.0f} ms server)", [fresh_s], FRESH_TARGET_S,
            f"  ({fresh.requests} requests, {judgments / fresh_s:.1f} judgments/s)"))
        first_store.dispose()

        say("building a fresh store with the same generations (not timed)")
        second_store = build_judge_store(folder / "second.db", samples=judgments)
        say("judging them again from the cache")
        before = server.requests
        cached, cached_s = run(second_store)
        if cached.judged != judgments or cached.cache_hits != judgments \
                or server.requests != before:
            raise RuntimeError(f"cached re-run: {cached.judged} judged, {cached.cache_hits} "
                               f"from cache, {server.requests - before} requests sent")
        result.timings.append(Timing(
            "re-run into a fresh store, every answer cached", [cached_s], CACHED_TARGET_S,
            f"  ({cached.cache_hits} cache hits, {cached.requests} requests)"))

        say("judging the same store again (everything stored)")
        stored, stored_s = run(second_store)
        if stored.judged != 0 or stored.skipped != judgments:
            raise RuntimeError(f"stored re-run: {stored.judged} judged, {stored.skipped} "
                               "skipped")
        result.timings.append(Timing(
            "re-run on the same store, every judgment stored", [stored_s], None,
            f"  ({stored.skipped} skipped, {stored.requests} requests)"))
        second_store.dispose()
        result.runs = [fresh, cached, stored]
    result.notes.append(
        f"judge_generations, protocol paper, {judgments} generations of one variant; a local "
        f"OpenAI-compatible server on 127.0.0.1 answering each request after "
        f"{latency_s * 1000:.0f} ms; the real openai client; SQLite store and cache in a "
        "temporary folder")
    return result
