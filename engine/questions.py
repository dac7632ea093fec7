"""Generate general cooking questions with answers through an OpenAI-compatible chat API."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import unicodedata
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from db.errors import UserError
from engine.importers.base import ImportPlan, PlannedDataset, PlannedSample, Problem
from engine.llm import ChatClient, resolve_endpoint, run_pool, usage_cost

PROMPT_VERSION = "questions-v1"
QUESTIONS_FILE = "questions.jsonl"
STATE_FILE = "state.json"

SYSTEM_PROMPT = (
    "You write training data for a cooking assistant: realistic questions that home cooks ask, "
    "with accurate, practical answers. Reply with JSON only."
)
USER_PROMPT = (
    "Write {count} different general cooking questions that {audience} might ask about "
    "{topic}, each with a helpful, accurate answer of two to five sentences. Every question "
    "must stand on its own, be specific, and differ from the others.{avoid}\n"
    'Reply with a JSON object of this form: {{"pairs": [{{"question": "...", '
    '"answer": "..."}}]}}'
)
TEMPERATURE = 0.9
# Stored questions of the same topic shown to the model so that it asks something new.
AVOID_SHOWN = 8

TOPICS: tuple[str, ...] = (
    "knife skills", "baking bread", "cakes and pastry", "cookies and bars", "pies and tarts",
    "baking science", "food safety and hygiene", "storing and freezing food", "meal prep",
    "grilling and barbecue", "roasting", "braising and stewing", "frying and deep-frying",
    "sautéing and stir-frying", "steaming and poaching", "sous vide", "eggs",
    "rice and grains", "pasta and noodles", "soups and stocks", "sauces and gravies",
    "seasoning with salt, acid and fat", "herbs and spices", "vegetables", "salads and dressings",
    "fruit", "beans and legumes", "tofu and plant proteins", "beef", "pork", "chicken and poultry",
    "fish and seafood", "dairy and cheese", "chocolate and desserts",
    "fermentation and pickling", "kitchen equipment", "cast iron and cookware care",
    "measuring and unit conversions", "ingredient substitutions", "vegetarian cooking",
    "vegan cooking", "gluten-free cooking", "cooking for children", "budget cooking and leftovers",
    "Italian cuisine", "French cuisine", "Chinese cuisine", "Japanese cuisine", "Indian cuisine",
    "Mexican cuisine", "Thai cuisine", "Middle Eastern cuisine", "breakfast and brunch",
    "plating and presentation", "holiday and party cooking",
)
AUDIENCES: tuple[str, ...] = (
    "a beginner home cook",
    "an experienced home cook",
    "someone cooking a weeknight dinner for a family",
    "someone working out why a dish went wrong",
)

REQUEST_TIMEOUT_S = 120.0  # twenty answers from gpt-3.5-turbo take 20-60 s
# No max_tokens: twenty answers of two to five sentences need 2,000-3,000 tokens, and a reply
# cut short loses its last pair; the server's own limit applies.
MAX_MALFORMED = 3  # replies per request that are not the JSON asked for before it is dropped
# Requests in a row that add no new question (all duplicates or malformed) before the run gives
# up: the model has run out of new questions or does not follow the format.
STALL_LIMIT = 8
NEAR_DUPLICATE_JACCARD = 0.8


class QuestionError(UserError):
    """Questions cannot be generated as asked (the model keeps replying with nothing new or
    not in the format asked for). What the model client cannot do raises its own
    engine.llm.LLMError (also a UserError). What was stored before either was raised is kept;
    running again continues from there."""


@dataclass(frozen=True)
class QuestionProgress:
    """Where a run stands, after each request. Counts are for the whole folder, all runs."""

    accepted: int
    target: int
    duplicates: int
    malformed: int
    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None  # None when a model's price is unknown
    eta_s: float | None  # None until this run has accepted something
    retries: int = 0


@dataclass(frozen=True)
class QuestionRun:
    """What `generate_questions` did. Counts are for the whole folder, all runs; `added` and
    `requests_this_run` are this run's share."""

    out_dir: Path
    target: int
    accepted: int
    added: int
    requests: int
    requests_this_run: int
    retries: int
    duplicates: int
    malformed: int
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    elapsed_s: float
    stopped: bool  # cancelled or max_requests reached before the target

    @property
    def complete(self) -> bool:
        return self.accepted >= self.target

    @property
    def questions_path(self) -> Path:
        return self.out_dir / QUESTIONS_FILE

    def __str__(self) -> str:
        cost = "unknown cost" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        status = "done" if self.complete else "stopped" if self.stopped else "incomplete"
        return (f"{self.accepted}/{self.target} questions ({status}; {self.added} new) in "
                f"{self.questions_path}: {self.requests} requests, {self.retries} retries, "
                f"{self.duplicates} duplicates, {self.malformed} malformed, "
                f"{self.tokens_in} tokens in, {self.tokens_out} out, {cost}")


# ---------------------------------------------------------------- duplicates

_WORD = re.compile(r"[^\W_]+")
# Function words carry little of what a question is about; dropping them lets "What's the best
# way to store herbs?" and "What is the best way to store herbs?" match. Question words and
# negations stay: "when" and "why" ask different things.
STOP_WORDS = frozenset("""
a about above after again all also am an and any are as at be been before being both but by
can could did do does doing during each few for from further had has have having he her here
hers him his i id if im in into is it its ive itll just me might more most much must my myself
of off on once only or other our ours out over own same she should so some such than that thats
the their theirs them then there theres these they this those through to too under until up us
very was we were whats hows whos wheres whens whys will with would you your youre yours
""".split())


def normalise_question(text: str) -> str:
    """Casefolded words without punctuation, one space apart: what counts as the same question."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("'", "").replace("\u2019", "")
    return " ".join(_WORD.findall(text))


def _fold(word: str) -> str:
    # A crude plural fold, applied alike to both sides: "eggs" and "egg" compare equal.
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def content_words(normalised: str) -> frozenset[str]:
    return frozenset(_fold(w) for w in normalised.split() if w not in STOP_WORDS)


def question_id(question: str) -> str:
    """A stable id for a question: a hash of its normalised text."""
    return "q-" + hashlib.sha1(normalise_question(question).encode()).hexdigest()[:16]


class QuestionIndex:
    """Exact duplicates by normalised text; near duplicates by the Jaccard similarity of content
    words, found with prefix filtering (AllPairs): each set is indexed under its few rarest
    words, so a lookup scans short lists and then checks the exact Jaccard of the candidates.
    It misses no pair at or above the threshold."""

    def __init__(self, threshold: float = NEAR_DUPLICATE_JACCARD):
        self.threshold = threshold
        self._exact: set[str] = set()
        self._sets: list[frozenset[str]] = []
        self._postings: dict[str, list[int]] = defaultdict(list)
        self._frequency: Counter[str] = Counter()
        self._rank: dict[str, tuple[int, int]] = {}
        self._next_rebuild = 256

    def __len__(self) -> int:
        return len(self._exact)

    def _key(self, word: str) -> tuple[int, int]:
        rank = self._rank.get(word)
        if rank is None:
            rank = self._rank[word] = (0, zlib.crc32(word.encode()))
        return rank

    def _prefix(self, words: frozenset[str]) -> list[str]:
        size = len(words)
        # The shortest overlap a match can have; the 1e-9 keeps 0.8 * 15 from rounding up to 13.
        overlap = math.ceil(self.threshold * size - 1e-9)
        return sorted(words, key=self._key)[: size - overlap + 1]

    def _rebuild(self) -> None:
        # Prefixes need one fixed word order, rarest first, and which words are rare is only
        # known as questions arrive ("how" and "cook" are in most): re-rank and re-index at
        # doubling sizes, which costs O(1) a question over a run.
        self._rank = {w: (count, zlib.crc32(w.encode())) for w, count in self._frequency.items()}
        self._postings = defaultdict(list)
        for index, words in enumerate(self._sets):
            for word in self._prefix(words):
                self._postings[word].append(index)
        self._next_rebuild = 2 * len(self._sets)

    def match(self, question: str) -> str | None:
        """"exact" or "near" when a stored question matches, else None."""
        normalised = normalise_question(question)
        words = content_words(normalised)
        return self._match(normalised, words, self._prefix(words))

    def _match(self, normalised: str, words: frozenset[str], prefix: list[str]) -> str | None:
        if normalised in self._exact:
            return "exact"
        size = len(words)
        low, high = self.threshold * size - 1e-9, size / self.threshold + 1e-9
        seen: set[int] = set()
        for word in prefix:
            for index in self._postings.get(word, ()):
                if index in seen:
                    continue
                seen.add(index)
                other = self._sets[index]
                if not low <= len(other) <= high:
                    continue
                shared = len(words & other)
                if shared / (size + len(other) - shared) >= self.threshold - 1e-9:
                    return "near"
        return None

    def add(self, question: str) -> str | None:
        """Store the question unless it matches one stored; returns the match kind or None."""
        normalised = normalise_question(question)
        words = content_words(normalised)
        prefix = self._prefix(words)
        found = self._match(normalised, words, prefix)
        if found:
            return found
        self._exact.add(normalised)
        if words:
            index = len(self._sets)
            self._sets.append(words)
            for word in prefix:
                self._postings[word].append(index)
            self._frequency.update(words)
            if len(self._sets) >= self._next_rebuild:
                self._rebuild()
        return None


# ---------------------------------------------------------------- replies


def parse_pairs(content: str | None) -> tuple[list[tuple[str, str]], int, bool]:
    """(question, answer) pairs from a reply, the number of items that lacked either, and
    whether the reply was the JSON asked for. A reply cut short still yields its whole items."""
    text = (content or "").strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    data: Any = None
    try:
        data = json.loads(text)
    except ValueError:
        start = min((i for i in (text.find("{"), text.find("[")) if i >= 0), default=-1)
        if start >= 0:
            try:
                data, _ = json.JSONDecoder().raw_decode(text, start)
            except ValueError:
                data = None
    if data is None:
        return _salvage(text), 0, False
    items: Any = data
    if isinstance(data, dict):
        items = next((v for k, v in data.items() if k in ("pairs", "questions", "items")
                      and isinstance(v, list)), None)
        if items is None:
            items = next((v for v in data.values() if isinstance(v, list)), [])
    if not isinstance(items, list):
        return [], 0, False
    pairs, bad = [], 0
    for item in items:
        pair = _pair(item)
        if pair:
            pairs.append(pair)
        else:
            bad += 1
    return pairs, bad, True


def _pair(item: Any) -> tuple[str, str] | None:
    if not isinstance(item, dict):
        return None
    fields = {str(k).casefold(): v for k, v in item.items()}
    question, answer = fields.get("question"), fields.get("answer")
    if isinstance(question, str) and isinstance(answer, str) and question.strip() \
            and answer.strip():
        return question.strip(), answer.strip()
    return None


def _salvage(text: str) -> list[tuple[str, str]]:
    decoder, pairs = json.JSONDecoder(), []
    start = text.find("{")
    while start >= 0:
        try:
            item, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        pair = _pair(item)
        if pair:
            pairs.append(pair)
        start = text.find("{", end if pair else start + 1)
    return pairs


# ---------------------------------------------------------------- the run


@dataclass
class _Request:
    index: int
    topic: str
    audience: str
    avoid: list[str]


@dataclass
class _Outcome:
    request: _Request
    pairs: list[tuple[str, str]] = field(default_factory=list)
    bad_items: int = 0
    malformed: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    response_id: str = ""
    model: str = ""
    last_reply: str = ""
    attempts: int = 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _read_stored(path: Path) -> list[dict[str, Any]]:
    """The readable questions in questions.jsonl; a crash's unterminated last line is cut off
    so that the next append starts on a line of its own."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        try:
            json.loads(data[cut:])
            with open(path, "ab") as handle:
                handle.write(b"\n")
            data += b"\n"
        except ValueError:
            with open(path, "r+b") as handle:
                handle.truncate(cut)
            data = data[:cut]
    rows = []
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and _pair(row):
            rows.append(row)
    return rows


class _Generator:
    """One run over one folder: the worker threads ask, the calling thread stores and reports."""

    def __init__(self, *, client: ChatClient, n: int, out_dir: Path, per_request: int,
                 seed_topics: Sequence[str]):
        self.client, self.model = client, client.model
        self.n, self.out_dir, self.per_request = n, out_dir, per_request
        self.topics = list(seed_topics)
        self.index = QuestionIndex()
        self.recent: dict[str, deque[str]] = defaultdict(lambda: deque(maxlen=AVOID_SHOWN))
        self.questions_path = out_dir / QUESTIONS_FILE
        self.state_path = out_dir / STATE_FILE
        self.state = self._load()
        self.added = 0
        self.requests_this_run = 0
        self.stall = 0
        self.last_outcome: _Outcome | None = None

    def _load(self) -> dict[str, Any]:
        for row in _read_stored(self.questions_path):
            if self.index.add(row["question"]) is None:
                self.recent[str(row.get("topic", ""))].append(row["question"])
        state: dict[str, Any] = {}
        if self.state_path.exists():
            try:
                state = json.loads(self.state_path.read_text())
            except ValueError:
                state = {}
        if not isinstance(state, dict):
            state = {}
        try:
            counts = {key: int(state.get(key) or 0)
                      for key in ("requests", "retries", "duplicates", "malformed")}
            usage = {m: [int(u[0]), int(u[1])] for m, u in (state.get("usage") or {}).items()}
        except (AttributeError, IndexError, TypeError, ValueError):
            # A damaged state file only loses counts; the questions themselves are in the jsonl.
            counts, usage = dict.fromkeys(("requests", "retries", "duplicates", "malformed"), 0), {}
        return {**counts, "usage": usage}

    @property
    def accepted(self) -> int:
        return len(self.index)

    def tokens(self) -> tuple[int, int]:
        usage = self.state["usage"].values()
        return sum(u[0] for u in usage), sum(u[1] for u in usage)

    def save_state(self) -> None:
        tokens_in, tokens_out = self.tokens()
        _write_json_atomic(self.state_path, {
            "target": self.n, "accepted": self.accepted, "model": self.model,
            "prompt_version": PROMPT_VERSION, "requests": self.state["requests"],
            "retries": self.state["retries"], "duplicates": self.state["duplicates"],
            "malformed": self.state["malformed"], "tokens_in": tokens_in,
            "tokens_out": tokens_out, "cost_usd": usage_cost(self.state["usage"]),
            "usage": self.state["usage"], "updated": _now(),
        })

    def progress(self, started: float) -> QuestionProgress:
        tokens_in, tokens_out = self.tokens()
        elapsed = time.monotonic() - started
        eta = (max(0, self.n - self.accepted) * elapsed / self.added) if self.added else None
        return QuestionProgress(
            accepted=self.accepted, target=self.n, duplicates=self.state["duplicates"],
            malformed=self.state["malformed"], requests=self.state["requests"],
            tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=usage_cost(self.state["usage"]),
            eta_s=eta, retries=self.state["retries"])

    def next_request(self, index: int) -> _Request:
        # Topics change every request and the audience every round of topics, so that a 4,000
        # question run asks 200 different prompts before any repeats.
        topic = self.topics[index % len(self.topics)]
        audience = AUDIENCES[(index // len(self.topics)) % len(AUDIENCES)]
        return _Request(index=index, topic=topic, audience=audience,
                        avoid=list(self.recent[topic]))

    # worker side ------------------------------------------------------------------------

    def ask(self, request: _Request) -> _Outcome:
        """One request, asked again while the reply is not the JSON asked for (up to
        MAX_MALFORMED replies). Raises engine.llm.LLMError for what retrying cannot fix."""
        avoid = ""
        if request.avoid:
            avoid = "\nThese are asked already; do not repeat them:\n" + "\n".join(
                f"- {q}" for q in request.avoid)
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT.format(
                count=self.per_request, audience=request.audience, topic=request.topic,
                avoid=avoid)},
        ]
        outcome = _Outcome(request)
        while True:
            done = self.client.complete(messages, temperature=TEMPERATURE,
                                        response_format={"type": "json_object"})
            outcome.attempts += done.requests
            outcome.retries += done.retries
            outcome.tokens_in += done.usage.tokens_in
            outcome.tokens_out += done.usage.tokens_out
            if done.stopped:
                break
            if done.content is None:  # a body that is not a chat completion at all
                outcome.last_reply = done.unreadable
                if not self._malformed(outcome):
                    break
                continue
            pairs, bad, well_formed = parse_pairs(done.content)
            outcome.last_reply = done.content[:200]
            if pairs:
                outcome.pairs, outcome.bad_items = pairs, bad
                outcome.malformed += 0 if well_formed else 1
                outcome.response_id = done.id or f"req-{request.index:06d}"
                outcome.model = done.model or self.model
                break
            if not self._malformed(outcome):
                break
        return outcome

    def _malformed(self, outcome: _Outcome) -> bool:
        """Count a malformed reply; True when the request should be asked again."""
        outcome.malformed += 1
        if outcome.malformed >= MAX_MALFORMED:
            return False
        outcome.retries += 1
        return True

    # calling thread side ----------------------------------------------------------------

    def store(self, outcome: _Outcome, handle: Any) -> None:
        """Keep the new questions of one finished request and update the counts."""
        state = self.state
        state["requests"] += 1
        state["retries"] += outcome.retries
        state["malformed"] += outcome.malformed + outcome.bad_items
        usage = state["usage"].setdefault(self.model, [0, 0])
        usage[0] += outcome.tokens_in
        usage[1] += outcome.tokens_out
        lines, created = [], _now()
        for question, answer in outcome.pairs:
            if self.accepted >= self.n:
                break
            if self.index.add(question):
                state["duplicates"] += 1
                continue
            self.recent[outcome.request.topic].append(question)
            lines.append(json.dumps({
                "question": question, "answer": answer, "model": outcome.model,
                "prompt_version": PROMPT_VERSION, "topic": outcome.request.topic,
                "request_id": outcome.response_id, "created": created,
            }, ensure_ascii=False) + "\n")
        if lines:
            handle.write("".join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        self.added += len(lines)
        self.stall = 0 if lines else self.stall + 1
        self.last_outcome = outcome
        self.save_state()

    def stall_error(self) -> QuestionError:
        last = self.last_outcome
        if last is not None and not last.pairs:
            why = (f"the replies are not the JSON asked for (the last began {last.last_reply!r})")
        else:
            why = "every question they held was stored already"
        return QuestionError(f"the last {self.stall} requests added no question: {why}; "
                             f"{self.accepted} of {self.n} questions are stored in "
                             f"{self.questions_path}")


def generate_questions(
    *,
    n: int,
    out_dir: Path,
    model: str = "gpt-3.5-turbo",
    base_url: str | None = None,
    api_key: str | None = None,
    concurrency: int = 8,
    per_request: int = 20,
    seed_topics: Sequence[str] | None = None,
    progress: Callable[[QuestionProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_requests: int | None = None,
) -> QuestionRun:
    """Ask `model` for general cooking question/answer pairs until `out_dir` holds `n` unique
    questions; each accepted pair is appended to out_dir/questions.jsonl as it arrives and the
    counts to out_dir/state.json, so running again with the same folder continues.

    Requests go through engine.llm's client, `concurrency` at once, each for `per_request`
    pairs on a topic from `seed_topics` (default TOPICS). Rate limits (429, honouring
    Retry-After), time-outs, dropped connections and 5xx are retried with jittered back-off;
    malformed replies are counted and asked again. `should_stop()` is checked before each
    request starts and while waiting: the run then stops after the requests already sent,
    keeping everything stored. `max_requests` caps this run's requests.

    The API key comes from `api_key` or $OPENAI_API_KEY and is never written anywhere; the
    server from `base_url`, $OPENAI_BASE_URL or api.openai.com. A server on this machine with
    no key set is asked without one.

    Raises QuestionError when STALL_LIMIT requests in a row add nothing; engine.llm's
    LLMKeyError (no key for a remote server), LLMEndpointError (a bad or unreachable base URL),
    LLMAuthError (a rejected key), LLMQuotaError (no quota left) or LLMError (a refused
    request, a server that keeps failing) — all UserErrors; ValueError for a bad argument.
    """
    if n < 1 or concurrency < 1 or per_request < 1:
        raise ValueError("n, concurrency and per_request must be at least 1")
    endpoint = resolve_endpoint(base_url, api_key)
    topics = list(seed_topics) if seed_topics else list(TOPICS)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _Generator(client=ChatClient(model=model, endpoint=endpoint,
                                       timeout_s=REQUEST_TIMEOUT_S),
                     n=n, out_dir=out_dir, per_request=per_request, seed_topics=topics)
    started = time.monotonic()
    first_index = run.state["requests"]
    submitted = 0
    limit_reached = False

    def next_request(in_flight: int) -> _Request | None:
        nonlocal submitted, limit_reached
        # Ask only for what the requests in flight will not bring.
        if run.accepted + in_flight * per_request >= n:
            return None
        if max_requests is not None and submitted >= max_requests:
            limit_reached = True
            return None
        submitted += 1
        return run.next_request(first_index + submitted - 1)

    try:
        with open(run.questions_path, "a", encoding="utf-8") as handle:
            def finished(outcomes: list[_Outcome]) -> None:
                for outcome in outcomes:
                    if outcome.attempts:
                        run.store(outcome, handle)
                        run.requests_this_run += 1
                        if progress is not None:
                            progress(run.progress(started))
                if run.stall >= STALL_LIMIT and run.accepted < n:
                    raise run.stall_error()

            cancelled = run_pool(next_item=next_request, work=run.ask, on_done=finished,
                                 concurrency=concurrency, stopping=run.client.stopping,
                                 should_stop=should_stop, name="questions")
    finally:
        run.client.close()
    tokens_in, tokens_out = run.tokens()
    return QuestionRun(
        out_dir=out_dir, target=n, accepted=run.accepted, added=run.added,
        requests=run.state["requests"], requests_this_run=run.requests_this_run,
        retries=run.state["retries"], duplicates=run.state["duplicates"],
        malformed=run.state["malformed"], tokens_in=tokens_in, tokens_out=tokens_out,
        cost_usd=usage_cost(run.state["usage"]), elapsed_s=time.monotonic() - started,
        stopped=(cancelled or limit_reached) and run.accepted < n,
    )


# ---------------------------------------------------------------- import


def questions_plan(out_dir: Path, *, name: str = "cooking-questions") -> ImportPlan:
    """The questions in out_dir/questions.jsonl as one text dataset, with a Problem (file:line)
    for each line that is not a question with its answer. Never raises for bad content."""
    path = out_dir / QUESTIONS_FILE
    plan = ImportPlan()
    if not path.exists():
        plan.problems.append(Problem(str(path), "expected the questions file that `ddft data "
                                     "generate-questions` writes, found no file"))
        return plan
    data = path.read_bytes()
    samples: list[PlannedSample] = []
    seen: set[str] = set()
    models: set[str] = set()
    versions: set[str] = set()
    lines = data.decode("utf-8", "replace").split("\n")
    unterminated = not data.endswith(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            if unterminated and number == len(lines):
                plan.left_out.append(
                    (f"line {number}", "unfinished last line of an interrupted run"))
            else:
                plan.problems.append(Problem(str(path), f"expected a JSON object, found "
                                             f"unreadable text ({exc.msg})", line=number))
            continue
        pair = _pair(row)
        if pair is None:
            found = sorted(row) if isinstance(row, dict) else type(row).__name__
            plan.problems.append(Problem(str(path), "expected an object with a question and an "
                                         f"answer, found {found}", line=number))
            continue
        question, answer = pair
        external_id = question_id(question)
        if external_id in seen:
            plan.left_out.append((external_id, f"line {number} repeats a question"))
            continue
        seen.add(external_id)
        model = str(row.get("model", ""))
        models.add(model)
        versions.add(str(row.get("prompt_version", "")))
        samples.append(PlannedSample(
            external_id=external_id, modality="text", prompt=question, answer=answer,
            group=str(row.get("topic", "")),
            meta={"model": model, "prompt_version": str(row.get("prompt_version", "")),
                  "topic": str(row.get("topic", "")),
                  "request_id": str(row.get("request_id", ""))},
        ))
    generated_by = ", ".join(sorted(m for m in models if m)) or "an unknown model"
    plan.datasets.append(PlannedDataset(
        name=name, modality="text", purpose="train", source="questions", root=str(out_dir),
        description=f"General cooking questions with answers generated by {generated_by}",
        meta={"models": sorted(models), "prompt_versions": sorted(versions)},
        samples=samples,
    ))
    plan.notes.append(f"{len(samples)} questions from {path}")
    return plan
