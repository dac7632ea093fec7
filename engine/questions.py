"""Generate general cooking questions with answers through an OpenAI-compatible chat API."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import threading
import time
import unicodedata
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from engine.importers.base import ImportPlan, PlannedDataset, PlannedSample, Problem

PROMPT_VERSION = "questions-v1"
QUESTIONS_FILE = "questions.jsonl"
STATE_FILE = "state.json"
DEFAULT_BASE_URL = "https://api.openai.com/v1"

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

# US dollars per million (input, output) tokens.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-0125": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
}

REQUEST_TIMEOUT_S = 120.0  # twenty answers from gpt-3.5-turbo take 20-60 s
MAX_ATTEMPTS = 6  # per request, for rate limits, time-outs, connection drops and 5xx
MAX_MALFORMED = 3  # replies per request that are not the JSON asked for before it is dropped
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
MAX_RETRY_AFTER_S = 300.0
# Requests in a row that add no new question (all duplicates or malformed) before the run gives
# up: the model has run out of new questions or does not follow the format.
STALL_LIMIT = 8
NEAR_DUPLICATE_JACCARD = 0.8


class QuestionError(RuntimeError):
    """Questions cannot be generated as asked (no key, rejected key, unreachable server, ...).
    What was stored before it was raised is kept; running again continues from there."""


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


# ---------------------------------------------------------------- prices


def request_cost(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """US dollars for this usage, or None for a model not in PRICES_PER_MTOK."""
    if model not in PRICES_PER_MTOK:
        return None
    price_in, price_out = PRICES_PER_MTOK[model]
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


def _usage_cost(usage: dict[str, list[int]]) -> float | None:
    total = 0.0
    for model, (tokens_in, tokens_out) in usage.items():
        cost = request_cost(model, tokens_in, tokens_out)
        if cost is None:
            if tokens_in or tokens_out:
                return None
            continue
        total += cost
    return total


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


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            when = parsedate_to_datetime(value)
            return (when - datetime.now(timezone.utc)).total_seconds()
    except (TypeError, ValueError):
        return None


def backoff_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `failures`: the server's Retry-After when it gives a
    sensible one, else exponential back-off; both with jitter so parallel requests spread out."""
    if retry_after is not None and 0 <= retry_after <= MAX_RETRY_AFTER_S:
        return retry_after * (1 + 0.25 * random.random())
    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (failures - 1))
    return delay * (0.75 + 0.5 * random.random())


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

    def __init__(self, *, client: Any, base_url: str, model: str, n: int, out_dir: Path,
                 per_request: int, seed_topics: Sequence[str]):
        self.client, self.base_url, self.model = client, base_url, model
        self.n, self.out_dir, self.per_request = n, out_dir, per_request
        self.topics = list(seed_topics)
        self.stopping = threading.Event()
        self.server_answered = False
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
            "tokens_out": tokens_out, "cost_usd": _usage_cost(self.state["usage"]),
            "usage": self.state["usage"], "updated": _now(),
        })

    def progress(self, started: float) -> QuestionProgress:
        tokens_in, tokens_out = self.tokens()
        elapsed = time.monotonic() - started
        eta = (max(0, self.n - self.accepted) * elapsed / self.added) if self.added else None
        return QuestionProgress(
            accepted=self.accepted, target=self.n, duplicates=self.state["duplicates"],
            malformed=self.state["malformed"], requests=self.state["requests"],
            tokens_in=tokens_in, tokens_out=tokens_out, cost_usd=_usage_cost(self.state["usage"]),
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
        """One request with its retries; raises QuestionError for what retrying cannot fix."""
        import openai

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
        failures = 0
        while not self.stopping.is_set():
            outcome.attempts += 1
            try:
                response = self.client.chat.completions.create(
                    model=self.model, messages=messages, temperature=TEMPERATURE,
                    response_format={"type": "json_object"})
            except openai.AuthenticationError:
                raise QuestionError(f"{self.base_url} rejected the API key (401 "
                                    "Unauthorized): check OPENAI_API_KEY or --api-key") from None
            except openai.APITimeoutError as exc:
                failures = self._failed(outcome, failures, exc)
                continue
            except openai.APIConnectionError as exc:
                if not self.server_answered:
                    cause = exc.__cause__ or exc
                    raise QuestionError(f"cannot reach {self.base_url}: {cause}; check "
                                        "--base-url or OPENAI_BASE_URL") from None
                failures = self._failed(outcome, failures, exc)
                continue
            except openai.APIStatusError as exc:
                self.server_answered = True
                if getattr(exc, "code", None) == "insufficient_quota":
                    raise QuestionError(f"the account behind the API key has no quota left "
                                        f"(429 insufficient_quota at {self.base_url})") from None
                if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                    failures = self._failed(outcome, failures, exc)
                    continue
                raise QuestionError(f"{self.base_url} refused the request for model "
                                    f"{self.model!r} ({exc.status_code}): {exc.message}") from None
            except (ValueError, openai.APIResponseValidationError) as exc:
                # A body that is not a chat completion (a proxy's error page, a cut stream).
                self.server_answered = True
                outcome.last_reply = f"unreadable response body ({exc})"
                if not self._malformed(outcome):
                    break
                continue
            self.server_answered = True
            self._count_usage(outcome, response)
            content = response.choices[0].message.content if response.choices else None
            pairs, bad, well_formed = parse_pairs(content)
            outcome.last_reply = (content or "")[:200]
            if pairs:
                outcome.pairs, outcome.bad_items = pairs, bad
                outcome.malformed += 0 if well_formed else 1
                outcome.response_id = response.id or f"req-{request.index:06d}"
                outcome.model = response.model or self.model
                break
            if not self._malformed(outcome):
                break
        return outcome

    def _count_usage(self, outcome: _Outcome, response: Any) -> None:
        usage = getattr(response, "usage", None)
        if usage is not None:
            outcome.tokens_in += usage.prompt_tokens or 0
            outcome.tokens_out += usage.completion_tokens or 0

    def _malformed(self, outcome: _Outcome) -> bool:
        """Count a malformed reply; True when the request should be asked again."""
        outcome.malformed += 1
        if outcome.malformed >= MAX_MALFORMED:
            return False
        outcome.retries += 1
        return True

    def _failed(self, outcome: _Outcome, failures: int, exc: Exception) -> int:
        """Wait before the next attempt, or raise QuestionError when attempts are spent."""
        failures += 1
        if failures >= MAX_ATTEMPTS:
            raise QuestionError(f"{self.base_url} kept failing; gave up after {failures} "
                                f"attempts: {exc}")
        outcome.retries += 1
        self.stopping.wait(backoff_delay(failures, _retry_after(exc)))
        return failures

    # calling thread side ----------------------------------------------------------------

    def store(self, outcome: _Outcome, handle: Any) -> None:
        """Keep the new questions of one finished request and update the counts."""
        if not outcome.attempts:
            return
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

    `concurrency` requests are in flight at once, each for `per_request` pairs on a topic from
    `seed_topics` (default TOPICS). Rate limits (429, honouring Retry-After), time-outs, dropped
    connections and 5xx are retried with back-off; malformed replies are counted and asked again.
    `should_stop()` is checked between requests: the run then stops after the requests in
    flight, keeping everything stored. `max_requests` caps this run's requests.

    The API key comes from `api_key` or $OPENAI_API_KEY and is never written anywhere.

    Raises QuestionError with no key, a rejected key, an unreachable server, a refused request,
    a server that keeps failing, or when STALL_LIMIT requests in a row add nothing; ValueError
    for a bad argument.
    """
    if n < 1 or concurrency < 1 or per_request < 1:
        raise ValueError("n, concurrency and per_request must be at least 1")
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        raise QuestionError("no API key: set OPENAI_API_KEY or pass --api-key")
    url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    topics = list(seed_topics) if seed_topics else list(TOPICS)
    # openai (and httpx under it) load only for the commands that call a model.
    import openai

    out_dir.mkdir(parents=True, exist_ok=True)
    # max_retries=0: retries happen here, where they are counted and honour should_stop.
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=REQUEST_TIMEOUT_S)
    run = _Generator(client=client, base_url=url, model=model, n=n, out_dir=out_dir,
                     per_request=per_request, seed_topics=topics)
    started = time.monotonic()
    first_index = run.state["requests"]
    submitted = 0
    stopped = False
    failure: BaseException | None = None
    pending: set[Future[_Outcome]] = set()
    try:
        with open(run.questions_path, "a", encoding="utf-8") as handle, \
                ThreadPoolExecutor(max_workers=concurrency,
                                   thread_name_prefix="questions") as pool:
            try:
                while True:
                    while (failure is None and not run.stopping.is_set()
                           and len(pending) < concurrency):
                        # Ask only for what the requests in flight will not bring.
                        if run.accepted + len(pending) * per_request >= n:
                            break
                        if max_requests is not None and submitted >= max_requests:
                            stopped = True
                            break
                        if should_stop is not None and should_stop():
                            stopped = True
                            run.stopping.set()
                            break
                        request = run.next_request(first_index + submitted)
                        pending.add(pool.submit(run.ask, request))
                        submitted += 1
                    if not pending:
                        break
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        try:
                            outcome = future.result()
                        except BaseException as exc:  # stop the others, keep what is stored
                            failure = failure or exc
                            run.stopping.set()
                            continue
                        run.store(outcome, handle)
                        run.requests_this_run += 1
                        if progress is not None:
                            progress(run.progress(started))
                    if should_stop is not None and not stopped and should_stop():
                        stopped = True
                        run.stopping.set()
                    if failure is None and run.stall >= STALL_LIMIT and run.accepted < n:
                        failure = run.stall_error()
                        run.stopping.set()
            finally:
                # An error or interrupt here must not leave workers retrying behind it.
                run.stopping.set()
    finally:
        client.close()
    if failure is not None:
        raise failure
    tokens_in, tokens_out = run.tokens()
    return QuestionRun(
        out_dir=out_dir, target=n, accepted=run.accepted, added=run.added,
        requests=run.state["requests"], requests_this_run=run.requests_this_run,
        retries=run.state["retries"], duplicates=run.state["duplicates"],
        malformed=run.state["malformed"], tokens_in=tokens_in, tokens_out=tokens_out,
        cost_usd=_usage_cost(run.state["usage"]), elapsed_s=time.monotonic() - started,
        stopped=stopped and run.accepted < n,
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
