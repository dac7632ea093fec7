"""The GPT judge's prompts, one versioned set per protocol, and the parsers of their replies.

A prompt's text and its parser are one unit: change either and bump its entry in
PROMPT_VERSIONS, so that judgments made with the old wording stay apart from the new ones in the
store (Judgment.prompt_version) and in the cache. tests/engine/test_judge_gpt.py pins a
fingerprint of every prompt to catch an edit made without a bump.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

PROTOCOLS = ("paper", "upstream", "two-stage", "pairwise")
PROMPT_VERSIONS: dict[str, str] = {
    "paper": "paper-v1",
    "upstream": "upstream-v1",
    "two-stage": "two-stage-v1",
    "pairwise": "pairwise-v1",
}
# The paper counts a score of 3.5 and above as a match (as engine.evaluation.offline_judge does).
YES_THRESHOLD = 3.5

Messages = list[dict[str, str]]


# ---------------------------------------------------------------- paper

# ddft's rendering of the judge of Wen & Hussain (2024), section 4.1: GPT-3.5 is asked how well a
# generated recipe matches the correct one, on a scale from 1 to 5, and 3.5 and above counts as
# 'yes'. The paper's own wording could not be fetched when this was written, so the text below is
# written to its stated intent, not copied from it; results made with it are labelled paper-v1.
PAPER_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating how well a recipe generated from a "
    "cooking video matches the correct recipe for that video. Compare the generated recipe "
    "with the correct recipe and score how well they match. Here's how you can accomplish the "
    "task:\n"
    "------\n"
    "##INSTRUCTIONS:\n"
    "- Judge whether the generated recipe would make the same dish as the correct recipe.\n"
    "- Compare the ingredients, including their quantities and units, and the steps, "
    "including their order.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Missing, extra or wrong ingredients, measurements or steps lower the score.\n"
    "- Score from 1 to 5: 1 means the generated recipe does not match the correct recipe at "
    "all, 5 means it matches it completely."
)
PAPER_USER = (
    "Please evaluate the following generated recipe against the correct recipe:\n\n"
    "Correct recipe:\n{reference}\n\n"
    "Generated recipe:\n{generated}\n\n"
    "Provide your evaluation only as a score from 1 to 5, where 5 indicates the best match. "
    "Please generate the response in the form of a Python dictionary string with the key "
    "'score', whose value is a number, not a string. DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR "
    "EXPLANATION. For example, your response should look like this: {{'score': 3}}."
)


def paper_messages(*, reference: str, generated: str) -> Messages:
    return [
        {"role": "system", "content": PAPER_SYSTEM},
        {"role": "user", "content": PAPER_USER.format(reference=reference, generated=generated)},
    ]


# ---------------------------------------------------------------- upstream

# The question-answer judge of Video-ChatGPT's quantitative evaluation
# (mbzuai-oryx/Video-ChatGPT, quantitative_evaluation/evaluate_activitynet_qa.py), which
# Video-LLaVA reuses for its published video-QA numbers. Written out from that widely reused
# prompt, keeping its wording, its quirks included (it asks for an INTEGER score and then shows
# 4.8 as the example; the "------" line runs into the instructions because the original joins
# its strings without newlines), so that scores compare with published ones.
UPSTREAM_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating the correctness of generative "
    "outputs for question-answer pairs. "
    "Your task is to compare the predicted answer with the correct answer and determine if "
    "they match meaningfully. Here's how you can accomplish the task:"
    "------"
    "##INSTRUCTIONS: "
    "- Focus on the meaningful match between the predicted answer and the correct answer.\n"
    "- Consider synonyms or paraphrases as valid matches.\n"
    "- Evaluate the correctness of the prediction compared to the answer."
)
UPSTREAM_USER = (
    "Please evaluate the following video-based question-answer pair:\n\n"
    "Question: {question}\n"
    "Correct Answer: {reference}\n"
    "Predicted Answer: {generated}\n\n"
    "Provide your evaluation only as a yes/no and score where the score is an integer value "
    "between 0 and 5, with 5 indicating the highest meaningful match. "
    "Please generate the response in the form of a Python dictionary string with keys 'pred' "
    "and 'score', where value of 'pred' is  a string of 'yes' or 'no' and value of 'score' is "
    "in INTEGER, not STRING."
    "DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR EXPLANATION. Only provide the Python dictionary "
    "string. "
    "For example, your response should look like this: {{'pred': 'yes', 'score': 4.8}}."
)


def upstream_messages(*, question: str, reference: str, generated: str) -> Messages:
    return [
        {"role": "system", "content": UPSTREAM_SYSTEM},
        {"role": "user", "content": UPSTREAM_USER.format(question=question, reference=reference,
                                                         generated=generated)},
    ]


# ---------------------------------------------------------------- two-stage

# The paper's future work, made concrete by ddft: the ingredients (with their measurements) and
# the steps are judged in separate requests, so that a recipe with the right steps and vague
# quantities is told apart from one with the right shopping list and the wrong method.
TWO_STAGE_SYSTEM = (
    "You are an intelligent chatbot designed for evaluating one part of a recipe generated "
    "from a cooking video against the same part of the correct recipe. Judge only the part you "
    "are asked about and ignore the rest of the recipes. Consider synonyms or paraphrases as "
    "valid matches. Score from 1 to 5: 1 means that part does not match at all, 5 means it "
    "matches completely."
)
TWO_STAGE_FOCUS = {
    "ingredients": (
        "the INGREDIENTS WITH THEIR MEASUREMENTS: does the generated recipe list the same "
        "ingredients as the correct recipe, each with the right quantity and unit? Missing, "
        "extra or wrong ingredients, and missing or wrong quantities, lower the score."
    ),
    "steps": (
        "the STEPS: does the generated recipe give the same preparation and cooking steps as "
        "the correct recipe, in the same order, with the same times and temperatures where "
        "they are given? Missing, extra, wrong or misordered steps lower the score."
    ),
}
TWO_STAGE_USER = (
    "Please evaluate {focus}\n\n"
    "Correct recipe:\n{reference}\n\n"
    "Generated recipe:\n{generated}\n\n"
    "Provide your evaluation only as a score from 1 to 5, where 5 indicates the best match. "
    "Please generate the response in the form of a Python dictionary string with the key "
    "'score', whose value is a number, not a string. DO NOT PROVIDE ANY OTHER OUTPUT TEXT OR "
    "EXPLANATION. For example, your response should look like this: {{'score': 3}}."
)
STAGES = tuple(TWO_STAGE_FOCUS)


def two_stage_messages(*, reference: str, generated: str) -> dict[str, Messages]:
    """One conversation per stage, in STAGES order."""
    return {
        stage: [
            {"role": "system", "content": TWO_STAGE_SYSTEM},
            {"role": "user", "content": TWO_STAGE_USER.format(
                focus=focus, reference=reference, generated=generated)},
        ]
        for stage, focus in TWO_STAGE_FOCUS.items()
    }


# ---------------------------------------------------------------- pairwise

PAIRWISE_SYSTEM = (
    "You are an intelligent chatbot designed for comparing two recipes generated from the same "
    "cooking video with the correct recipe for that video. Decide which of the two generated "
    "recipes matches the correct recipe better: the dish, the ingredients with their quantities "
    "and units, and the steps in their order. Consider synonyms or paraphrases as valid "
    "matches. Do not let the order in which the recipes are shown, or their length, influence "
    "your decision. Answer tie only when neither is better."
)
PAIRWISE_USER = (
    "Correct recipe:\n{reference}\n\n"
    "Recipe A:\n{first}\n\n"
    "Recipe B:\n{second}\n\n"
    "Which recipe matches the correct recipe better? Reply with only one word: A, B or tie."
)


def pairwise_messages(*, reference: str, first: str, second: str) -> Messages:
    """`first` is shown as recipe A, `second` as recipe B."""
    return [
        {"role": "system", "content": PAIRWISE_SYSTEM},
        {"role": "user", "content": PAIRWISE_USER.format(reference=reference, first=first,
                                                         second=second)},
    ]


def prompt_fingerprint(protocol: str) -> str:
    """A short hash of a protocol's prompt texts, for spotting an edit without a version bump.
    Raises KeyError for an unknown protocol."""
    texts = {
        "paper": (PAPER_SYSTEM, PAPER_USER),
        "upstream": (UPSTREAM_SYSTEM, UPSTREAM_USER),
        "two-stage": (TWO_STAGE_SYSTEM, TWO_STAGE_USER, *TWO_STAGE_FOCUS.values()),
        "pairwise": (PAIRWISE_SYSTEM, PAIRWISE_USER),
    }[protocol]
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:12]


# ---------------------------------------------------------------- parsing replies


@dataclass(frozen=True)
class UpstreamReply:
    pred: str  # yes | no
    score: float


_NUMBER = r"(\d+(?:\.\d+)?)"
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def _dicts(reply: str) -> list[dict[str, Any]]:
    """Every {...} in the reply that reads as a Python or JSON dict, in order."""
    found = []
    for match in re.finditer(r"\{[^{}]*\}", reply):
        text = match.group(0)
        for load in (ast.literal_eval, json.loads):
            try:
                value = load(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(value, dict):
                found.append({str(k).strip().lower(): v for k, v in value.items()})
                break
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*" + _NUMBER + r"\s*(?:/\s*5)?\s*", value)
        return float(match.group(1)) if match else None
    return None


def _in_range(score: float | None, low: float, high: float) -> float | None:
    return score if score is not None and low <= score <= high else None


def parse_score(reply: str | None, *, low: float = 1.0, high: float = 5.0) -> float | None:
    """The score in a reply to the paper or two-stage prompt, or None when there is none or
    more than one reading. Takes {'score': 4}, a fenced or prose-wrapped dict, "Score: 4",
    "4/5", "4 out of 5" or a bare number; a score outside [low, high] is no score."""
    if not reply or not reply.strip():
        return None
    text = _FENCE.sub("", reply.strip())
    for found in _dicts(text):
        if "score" in found:
            return _in_range(_number(found["score"]), low, high)
    candidates = set()
    for pattern in (r"['\"]?score['\"]?\s*(?:is|of|[:=])?\s*" + _NUMBER,
                    _NUMBER + r"\s*(?:/|out of)\s*5\b"):
        candidates.update(float(m) for m in re.findall(pattern, text, flags=re.IGNORECASE))
    if not candidates:
        bare = re.fullmatch(r"[\s*'\"]*" + _NUMBER + r"[\s*'\".]*", text)
        if bare:
            candidates.add(float(bare.group(1)))
    if len(candidates) != 1:
        return None
    return _in_range(candidates.pop(), low, high)


def parse_upstream(reply: str | None) -> UpstreamReply | None:
    """{'pred': 'yes'|'no', 'score': n} from a reply to the upstream prompt, read with
    ast.literal_eval (JSON too) wherever it sits in the reply; None when pred is not yes or no
    or the score is not a number from 0 to 5."""
    if not reply or not reply.strip():
        return None
    text = _FENCE.sub("", reply.strip())
    pred: Any = None
    score: Any = None
    for found in _dicts(text):
        if "pred" in found and "score" in found:
            pred, score = found["pred"], found["score"]
            break
    else:
        # A dict the evaluator could not read (a stray quote, a missing brace): take the pair
        # only when each key appears once.
        preds = re.findall(r"['\"]?pred['\"]?\s*:\s*['\"]?(yes|no)\b", text, flags=re.IGNORECASE)
        scores = re.findall(r"['\"]?score['\"]?\s*:\s*['\"]?" + _NUMBER, text,
                            flags=re.IGNORECASE)
        if len(preds) == 1 and len(scores) == 1:
            pred, score = preds[0], scores[0]
    if not isinstance(pred, str) or pred.strip().lower() not in ("yes", "no"):
        return None
    value = _in_range(_number(score), 0.0, 5.0)
    if value is None:
        return None
    return UpstreamReply(pred=pred.strip().lower(), score=value)


def parse_choice(reply: str | None) -> str | None:
    """'A', 'B' or 'tie' from a reply to the pairwise prompt; None when the reply names none or
    more than one (a reply that mentions both recipes is not guessed at)."""
    if not reply or not reply.strip():
        return None
    text = _FENCE.sub("", reply.strip())
    bare = re.sub(r"[\s*_`'\".:!()\[\]]", "", text)
    if bare in ("A", "B"):
        return bare
    if bare.lower() == "tie":
        return "tie"
    for found in _dicts(text):
        for key in ("better", "winner", "answer", "choice"):
            value = found.get(key)
            if isinstance(value, str):
                return parse_choice(value)
    named = set(re.findall(r"\b(?:[Rr]ecipe\s+)?([AB])\b", text))
    tie = re.search(r"\btie\b", text, flags=re.IGNORECASE) is not None
    if len(named) == 1 and not tie:
        return named.pop()
    if tie and not named:
        return "tie"
    return None
