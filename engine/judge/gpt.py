"""The GPT judge: scores stored generations against their reference recipes through an
OpenAI-compatible chat API, with the paper's, the upstream, a two-stage and a pairwise protocol."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from db import queries
from db.errors import UserError
from db.models import Generation
from db.store import session_scope
from db.workspace import make_private_file, make_private_folder
from engine.evaluation import judge_prompts as prompts
from engine.evaluation.judge_prompts import PROMPT_VERSIONS, PROTOCOLS, YES_THRESHOLD, Messages
from engine.llm import ChatClient, request_cost, resolve_endpoint, run_pool

TEMPERATURE = 0
CACHE_FILE = "judge-cache.sqlite"
REQUEST_TIMEOUT_S = 60.0  # a judgment is a few tokens; a reply this late is a stuck request
# Every protocol asks for a few tokens: a score dict ("{'score': 4}"), the upstream
# "{'pred': 'yes', 'score': 4}" (about 15 tokens) or one word (A, B, tie). 128 leaves room for
# the short preamble or code fence that the parsers read past, and stops a judge that starts
# explaining itself from costing hundreds of tokens a reply; a reply cut there is unparsable.
MAX_TOKENS = 128
MAX_UNREADABLE = 3  # bodies that are not a chat completion before the reply counts as unparsable
# What a one-request protocol calls its reply, and the two requests of the others, in order.
STAGES: dict[str, tuple[str, ...]] = {
    "paper": ("reply",),
    "upstream": ("reply",),
    "two-stage": prompts.STAGES,
    "pairwise": ("first_order", "second_order"),
}


class JudgeError(UserError):
    """Judging cannot go on as asked (unknown eval set or variant, nothing to judge, a pairwise
    judgment against another generation). What the model client cannot do raises its own
    engine.llm.LLMError (also a UserError). Judgments stored before either was raised are kept;
    running again continues from there."""


@dataclass(frozen=True)
class JudgeProgress:
    """Where a run stands, after each judged generation (or pair)."""

    done: int  # judged this run + stored before
    total: int
    judged: int
    skipped: int
    unparsable: int
    requests: int  # sent to the server this run, retries included
    cache_hits: int
    retries: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None  # None when the model's price is unknown
    eta_s: float | None  # None until this run has judged something


@dataclass(frozen=True)
class JudgeRun:
    """What `judge_generations` did. `total`, `unparsable` and the pairwise counts cover every
    judgment in scope, stored before or now; `judged`, requests, tokens and cost are this run's."""

    eval_set: str
    protocol: str
    model: str
    prompt_version: str
    total: int
    judged: int
    skipped: int
    unparsable: int
    no_reference: int  # generations left out because their sample has no reference answer
    unpaired: int  # pairwise: first-variant generations with no partner
    requests: int
    cache_hits: int
    retries: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    elapsed_s: float
    stopped: bool
    pairs_parsed: int = 0  # pairwise: pairs whose two orders were both read
    position_flips: int = 0  # pairwise: pairs where the verdict followed the position
    wins: dict[str, int] = field(default_factory=dict)  # pairwise: variant name|"tie" -> pairs

    @property
    def position_bias_rate(self) -> float | None:
        """Share of read pairs whose verdict flipped with the order; None when not pairwise or
        no pair was read."""
        if self.protocol != "pairwise" or not self.pairs_parsed:
            return None
        return self.position_flips / self.pairs_parsed

    def __str__(self) -> str:
        cost = "unknown cost" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        status = "stopped" if self.stopped else "done"
        text = (f"{self.protocol} ({self.prompt_version}) by {self.model} on {self.eval_set}: "
                f"{self.judged} judged, {self.skipped} stored before, {self.unparsable} "
                f"unparsable of {self.total} ({status}); {self.requests} requests, "
                f"{self.cache_hits} from cache, {self.retries} retries, {self.tokens_in} tokens "
                f"in, {self.tokens_out} out, {cost}")
        if self.no_reference:
            text += f"; {self.no_reference} without a reference left out"
        if self.protocol == "pairwise":
            rate = self.position_bias_rate
            wins = ", ".join(f"{k} {v}" for k, v in self.wins.items())
            text += (f"; {wins}; position bias "
                     f"{'n/a' if rate is None else f'{rate:.1%}'} ({self.position_flips} of "
                     f"{self.pairs_parsed} pairs)")
            if self.unpaired:
                text += f"; {self.unpaired} without a partner"
        return text


# ---------------------------------------------------------------- the cache


def cache_key(*, model: str, protocol: str, prompt_version: str, messages: Messages) -> str:
    blob = json.dumps({"model": model, "protocol": protocol, "prompt_version": prompt_version,
                       "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


class _Cache:
    """Replies by cache_key in one SQLite file, shared by the worker threads (and by runs in
    other processes: SQLite serialises their writes)."""

    def __init__(self, path: Path):
        # Cached replies are the workspace's data: for the owner and group only.
        make_private_folder(path.parent)
        make_private_file(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS reply (key TEXT PRIMARY KEY, model TEXT, protocol TEXT, "
            "prompt_version TEXT, content TEXT NOT NULL, response_model TEXT, "
            "tokens_in INTEGER, tokens_out INTEGER, created TEXT DEFAULT CURRENT_TIMESTAMP)")
        self._db.commit()

    def get(self, key: str) -> tuple[str, str] | None:
        with self._lock:
            row = self._db.execute("SELECT content, response_model FROM reply WHERE key = ?",
                                   (key,)).fetchone()
        return (row[0], row[1] or "") if row else None

    def put(self, key: str, *, model: str, protocol: str, prompt_version: str, content: str,
            response_model: str, tokens_in: int, tokens_out: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO reply (key, model, protocol, prompt_version, content, "
                "response_model, tokens_in, tokens_out) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key, model, protocol, prompt_version, content, response_model, tokens_in,
                 tokens_out))
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ---------------------------------------------------------------- units of work


@dataclass
class _Unit:
    """One judgment to make: the generation it is stored on and its conversations by stage."""

    generation_id: int
    conversations: dict[str, Messages]
    other_generation_id: int | None = None  # pairwise
    first_variant: str = ""
    other_variant: str = ""


@dataclass
class _Reply:
    content: str | None  # None: no readable chat completion came back
    raw: str
    cached: bool = False
    response_model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass
class _Outcome:
    unit: _Unit
    replies: dict[str, _Reply] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0

    @property
    def complete(self) -> bool:
        return len(self.replies) == len(self.unit.conversations)


def judgment_fields(protocol: str, unit: _Unit, replies: dict[str, _Reply]) -> dict[str, Any]:
    """score, verdict, raw and details of a Judgment from a unit's replies. A reply that cannot
    be read gives verdict 'unparsable' and score None, never a low score or a 'no'."""
    stages = STAGES[protocol]
    if len(stages) == 1:
        raw = replies[stages[0]].raw
    else:
        raw = json.dumps({stage: replies[stage].raw for stage in stages}, ensure_ascii=False)
    details: dict[str, Any] = {
        "response_model": next((r.response_model for r in replies.values()
                                if r.response_model), ""),
        "cached": all(r.cached for r in replies.values()),
        "tokens_in": sum(r.tokens_in for r in replies.values()),
        "tokens_out": sum(r.tokens_out for r in replies.values()),
    }
    score: float | None = None
    verdict = "unparsable"
    if protocol == "paper":
        score = prompts.parse_score(replies["reply"].content)
    elif protocol == "upstream":
        parsed = prompts.parse_upstream(replies["reply"].content)
        if parsed is not None:
            score, verdict = parsed.score, parsed.pred
            details["pred"] = parsed.pred
    elif protocol == "two-stage":
        parts = {stage: prompts.parse_score(replies[stage].content) for stage in stages}
        details.update(parts)
        if all(v is not None for v in parts.values()):
            score = round(sum(parts.values()) / len(parts), 4)  # type: ignore[arg-type]
    elif protocol == "pairwise":
        first = prompts.parse_choice(replies["first_order"].content)
        second = prompts.parse_choice(replies["second_order"].content)
        # First order shows the first variant as A; the second order swaps them.
        named = {
            "first_order": {"A": unit.first_variant, "B": unit.other_variant, "tie": "tie"},
            "second_order": {"A": unit.other_variant, "B": unit.first_variant, "tie": "tie"},
        }
        details.update(other_generation_id=unit.other_generation_id,
                       first_variant=unit.first_variant, other_variant=unit.other_variant,
                       first_order=first, second_order=second, winner=None, position_flip=None)
        if first is not None and second is not None:
            w1, w2 = named["first_order"][first], named["second_order"][second]
            winner = w1 if w1 == w2 else "tie"
            details["winner"] = winner
            details["position_flip"] = w1 != w2 and "tie" not in (w1, w2)
            score = {unit.first_variant: 1.0, "tie": 0.5}.get(winner, 0.0)
            verdict = {unit.first_variant: "win", "tie": "tie"}.get(winner, "loss")
        return {"score": score, "verdict": verdict, "raw": raw, "details": details}
    else:
        raise ValueError(f"unknown protocol {protocol!r}")
    if protocol != "upstream" and score is not None:
        verdict = "yes" if score >= YES_THRESHOLD else "no"
    return {"score": score, "verdict": verdict, "raw": raw, "details": details}


# ---------------------------------------------------------------- asking


class _Asker:
    """The worker side: one unit's requests through the client, and the cache."""

    def __init__(self, *, client: ChatClient | None, model: str, protocol: str,
                 prompt_version: str, cache: _Cache | None):
        self.client, self.model = client, model
        self.protocol, self.prompt_version, self.cache = protocol, prompt_version, cache
        # Set by run_pool on a cancel or an error; a run with nothing to ask has no client.
        self.stopping = client.stopping if client is not None else threading.Event()

    def judge(self, unit: _Unit) -> _Outcome:
        outcome = _Outcome(unit)
        for stage, messages in unit.conversations.items():
            if self.stopping.is_set():
                break
            reply = self._ask(messages, outcome)
            if reply is None:
                break
            outcome.replies[stage] = reply
        return outcome

    def _ask(self, messages: Messages, outcome: _Outcome) -> _Reply | None:
        """One conversation's reply, from the cache or the server; None when stopped first.
        Raises engine.llm.LLMError for what retrying cannot fix."""
        key = cache_key(model=self.model, protocol=self.protocol,
                        prompt_version=self.prompt_version, messages=messages)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                outcome.cache_hits += 1
                return _Reply(content=hit[0], raw=hit[0], cached=True, response_model=hit[1])
        assert self.client is not None  # a run with units to judge has a client
        done = self.client.complete(messages, temperature=TEMPERATURE, max_tokens=MAX_TOKENS,
                                    max_unreadable=MAX_UNREADABLE)
        outcome.requests += done.requests
        outcome.retries += done.retries
        if done.stopped:
            return None
        if done.content is None:
            return _Reply(content=None, raw=done.unreadable)
        response_model = done.model or self.model
        if self.cache is not None:
            self.cache.put(key, model=self.model, protocol=self.protocol,
                           prompt_version=self.prompt_version, content=done.content,
                           response_model=response_model, tokens_in=done.usage.tokens_in,
                           tokens_out=done.usage.tokens_out)
        return _Reply(content=done.content, raw=done.content, response_model=response_model,
                      tokens_in=done.usage.tokens_in, tokens_out=done.usage.tokens_out)


# ---------------------------------------------------------------- planning


@dataclass
class _Plan:
    units: list[_Unit]
    stored: list[dict[str, Any]]  # verdict and details of judgments in scope stored before
    no_reference: int = 0
    unpaired: int = 0


def _plan(db_engine: Any, *, eval_set: str, protocol: str, model: str, prompt_version: str,
          variants: Sequence[str] | None, pair: tuple[str, str] | None) -> _Plan:
    """What to judge, read from the store; raises JudgeError for unknown names or nothing to do."""
    with session_scope(db_engine) as session:
        dataset = queries.get_dataset(session, name=eval_set)
        if dataset is None:
            raise JudgeError(f"no eval set named {eval_set!r}")
        all_variants = {v.name: v.id for v in queries.list_variants(session)}
        wanted = list(pair) if protocol == "pairwise" else list(variants or [])
        unknown = [name for name in wanted if name not in all_variants]
        if unknown:
            raise JudgeError(f"no model variant named {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(all_variants) or 'none'}")
        names = {vid: name for name, vid in all_variants.items() if not wanted or name in wanted}
        generations = [g for g in queries.list_generations(session, dataset_id=dataset.id)
                       if g.variant_id in names]
        samples = {s.id: s for s in queries.list_samples(session, dataset_id=dataset.id,
                                                         limit=None)}
        empty = [name for vid, name in names.items()
                 if wanted and not any(g.variant_id == vid for g in generations)]
        if empty:
            raise JudgeError(f"no generations of {', '.join(map(repr, empty))} on {eval_set!r}: "
                             "run `ddft generate` first")
        if not generations:
            raise JudgeError(f"no generations on {eval_set!r}: run `ddft generate` first")
        with_reference = [g for g in generations if samples[g.sample_id].answer.strip()]
        plan = _Plan(units=[], stored=[], no_reference=len(generations) - len(with_reference))
        if not with_reference:
            raise JudgeError(f"no sample of {eval_set!r} that has a generation has a reference "
                             "answer to judge it against")

        def existing(generation_id: int):
            return queries.find_judgment(session, generation_id=generation_id, judge=model,
                                         protocol=protocol, prompt_version=prompt_version)

        if protocol != "pairwise":
            for g in with_reference:
                found = existing(g.id)
                if found is not None:
                    plan.stored.append({"verdict": found.verdict, "details": found.details})
                    continue
                plan.units.append(_Unit(generation_id=g.id,
                                        conversations=_conversations(protocol, g, samples)))
            return plan

        first_name, other_name = pair  # type: ignore[misc]
        first_id, other_id = all_variants[first_name], all_variants[other_name]
        others: dict[int, list[Generation]] = {}
        for g in with_reference:
            if g.variant_id == other_id:
                others.setdefault(g.sample_id, []).append(g)
        conflicts = []
        for g in with_reference:
            if g.variant_id != first_id:
                continue
            candidates = others.get(g.sample_id)
            if not candidates:
                plan.unpaired += 1
                continue
            # The same prompt and decoding when the other variant has it, else its latest.
            same = [o for o in candidates if o.params_key == g.params_key]
            partner = (same or candidates)[-1]
            found = existing(g.id)
            if found is not None:
                if found.details.get("other_generation_id") != partner.id:
                    conflicts.append(g.id)
                    continue
                plan.stored.append({"verdict": found.verdict, "details": found.details})
                continue
            sample = samples[g.sample_id]
            plan.units.append(_Unit(
                generation_id=g.id, other_generation_id=partner.id, first_variant=first_name,
                other_variant=other_name,
                conversations={
                    "first_order": prompts.pairwise_messages(
                        reference=sample.answer, first=g.text, second=partner.text),
                    "second_order": prompts.pairwise_messages(
                        reference=sample.answer, first=partner.text, second=g.text),
                }))
        if conflicts:
            raise JudgeError(
                f"{len(conflicts)} generations of {first_name!r} (ids {conflicts[:5]}) already "
                f"carry a {prompt_version} judgment by {model} against another generation; a "
                "generation holds one pairwise judgment per judge and prompt version")
        if not plan.units and not plan.stored:
            raise JudgeError(f"no sample of {eval_set!r} has generations of both "
                             f"{first_name!r} and {other_name!r}")
        return plan


def _conversations(protocol: str, generation: Generation, samples: dict) -> dict[str, Messages]:
    sample = samples[generation.sample_id]
    if protocol == "paper":
        return {"reply": prompts.paper_messages(reference=sample.answer,
                                                generated=generation.text)}
    if protocol == "upstream":
        return {"reply": prompts.upstream_messages(question=sample.prompt,
                                                   reference=sample.answer,
                                                   generated=generation.text)}
    return prompts.two_stage_messages(reference=sample.answer, generated=generation.text)


# ---------------------------------------------------------------- the run


def judge_generations(
    db_engine: Any,
    *,
    eval_set: str,
    protocol: str = "paper",
    model: str = "gpt-3.5-turbo",
    base_url: str | None = None,
    api_key: str | None = None,
    variants: Sequence[str] | None = None,
    pair: tuple[str, str] | None = None,
    concurrency: int = 16,
    cache_dir: Path | None = None,
    progress: Callable[[JudgeProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    job_id: int | None = None,
) -> JudgeRun:
    """Judge the stored generations on `eval_set` with `model` under `protocol` (paper,
    upstream, two-stage or pairwise) and store one Judgment per generation, keyed by judge
    model, protocol and prompt version: what is stored already is skipped, so a rerun resumes.

    `variants` limits the generations judged (default: all); pairwise needs `pair` = (first,
    other) and stores one judgment per pair on the first variant's generation. Requests go
    through engine.llm's client, `concurrency` at a time, at temperature 0 and with at most
    MAX_TOKENS in a reply; rate limits (429, honouring Retry-After), time-outs, dropped
    connections and 5xx are retried with jittered back-off. With `cache_dir`, replies are kept
    in cache_dir/judge-cache.sqlite and the same request is never sent twice. A reply that
    cannot be read is stored with verdict 'unparsable' and score None, and counted.
    `should_stop()` is checked before each unit starts and while waiting: the run then stops
    after the requests already sent, keeping their judgments.

    The key comes from `api_key` or $OPENAI_API_KEY and is never written anywhere; the server
    from `base_url`, $OPENAI_BASE_URL or api.openai.com. A server on this machine with no key
    set is asked without one.

    Raises JudgeError for an unknown eval set or variant, or nothing to judge; engine.llm's
    LLMKeyError (no key for a remote server), LLMEndpointError (a bad or unreachable base URL),
    LLMAuthError (a rejected key), LLMQuotaError (no quota left) or LLMError (a refused
    request, a server that keeps failing) — all UserErrors; ValueError for a bad argument.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if protocol == "pairwise" and (pair is None or len(pair) != 2 or pair[0] == pair[1]):
        raise ValueError("the pairwise protocol needs pair=(first variant, other variant), two "
                         "different names")
    # Before the store is read: a missing key or a bad URL is reported before anything else.
    endpoint = resolve_endpoint(base_url, api_key)
    prompt_version = PROMPT_VERSIONS[protocol]
    plan = _plan(db_engine, eval_set=eval_set, protocol=protocol, model=model,
                 prompt_version=prompt_version, variants=variants, pair=pair)
    client: ChatClient | None = None
    cache: _Cache | None = None
    if plan.units:  # a rerun with everything stored neither loads openai nor opens the cache
        cache = _Cache(cache_dir / CACHE_FILE) if cache_dir is not None else None
        client = ChatClient(model=model, endpoint=endpoint, timeout_s=REQUEST_TIMEOUT_S)
    asker = _Asker(client=client, model=model, protocol=protocol,
                   prompt_version=prompt_version, cache=cache)
    results = list(plan.stored)
    counts = {"judged": 0, "requests": 0, "cache_hits": 0, "retries": 0, "tokens_in": 0,
              "tokens_out": 0,
              "unparsable": sum(r["verdict"] == "unparsable" for r in plan.stored)}
    total = len(plan.units) + len(plan.stored)
    started = time.monotonic()

    def cost() -> float | None:
        return request_cost(model, counts["tokens_in"], counts["tokens_out"])

    def report() -> None:
        if progress is None:
            return
        elapsed = time.monotonic() - started
        remaining = len(plan.units) - counts["judged"]
        eta = remaining * elapsed / counts["judged"] if counts["judged"] else None
        progress(JudgeProgress(
            done=len(results), total=total, judged=counts["judged"], skipped=len(plan.stored),
            unparsable=counts["unparsable"], requests=counts["requests"],
            cache_hits=counts["cache_hits"], retries=counts["retries"], tokens_in=counts["tokens_in"],
            tokens_out=counts["tokens_out"], cost_usd=cost(), eta_s=eta))

    def store(outcomes: list[_Outcome]) -> None:
        """Keep the judgments of the units that finished together, in one transaction."""
        rows = []
        for outcome in outcomes:
            counts["requests"] += outcome.requests
            counts["retries"] += outcome.retries
            counts["cache_hits"] += outcome.cache_hits
            for r in outcome.replies.values():
                counts["tokens_in"] += r.tokens_in
                counts["tokens_out"] += r.tokens_out
            if outcome.complete:  # else stopped half-way; the cache keeps the replies that came
                rows.append((outcome.unit.generation_id,
                             judgment_fields(protocol, outcome.unit, outcome.replies)))
        if not rows:
            return
        with session_scope(db_engine) as session:
            for generation_id, fields in rows:
                queries.add_judgment(session, generation_id=generation_id, judge=model,
                                     protocol=protocol, prompt_version=prompt_version,
                                     job_id=job_id, **fields)
        for _, fields in rows:
            counts["judged"] += 1
            counts["unparsable"] += fields["verdict"] == "unparsable"
            results.append({"verdict": fields["verdict"], "details": fields["details"]})

    def finished(outcomes: list[_Outcome]) -> None:
        store(outcomes)
        report()

    todo = iter(plan.units)
    report()
    try:
        cancelled = run_pool(next_item=lambda in_flight: next(todo, None), work=asker.judge,
                             on_done=finished,
                             concurrency=concurrency, stopping=asker.stopping,
                             should_stop=should_stop, name="judge")
    finally:
        if client is not None:
            client.close()
        if cache is not None:
            cache.close()

    pairs = [r["details"] for r in results if r["verdict"] != "unparsable"] \
        if protocol == "pairwise" else []
    wins: dict[str, int] = {}
    if protocol == "pairwise":
        for name in (*pair, "tie"):  # type: ignore[misc]
            wins[name] = sum(1 for d in pairs if d.get("winner") == name)
    return JudgeRun(
        eval_set=eval_set, protocol=protocol, model=model, prompt_version=prompt_version,
        total=total, judged=counts["judged"], skipped=len(plan.stored),
        unparsable=counts["unparsable"], no_reference=plan.no_reference, unpaired=plan.unpaired,
        requests=counts["requests"],
        cache_hits=counts["cache_hits"], retries=counts["retries"],
        tokens_in=counts["tokens_in"], tokens_out=counts["tokens_out"], cost_usd=cost(),
        elapsed_s=time.monotonic() - started,
        stopped=cancelled and counts["judged"] < len(plan.units),
        pairs_parsed=len(pairs), position_flips=sum(1 for d in pairs if d.get("position_flip")),
        wins=wins,
    )
