"""The failure taxonomy (docs/evaluation.md): the review sample, and automatic proxies when nobody has reviewed.

The proxies are rules over the automatic scores, not judgements; the report says which it shows.
  refusal                 the response declines to answer (refusal cue) and states no key fact
  correct                 every key fact present
  confident_fabrication   a fabricated drug/gene/trial name, without hedging (an invented name is an answer)
  non_answer              not an answer at all (below); outside the §8.3 matrix, like refusals
  outdated_information    a temporal_accuracy item answered incompletely
  plausible_blending      a key fact stated but negated or given to the wrong subject (right words, wrong claim)
  accurate_but_misleading at least half the key facts present, the rest missing
  boundary_confusion      fewer than half present: an answer about something else

A response is a **non-answer** when the scorer found it states nothing (``ItemScore.non_answer``: empty, a
loop, word salad; ``scoring/acceptability.py``), or when it neither supports nor contradicts any key fact
(nor gives a yes/no verdict) and it is
  a fragment    fewer than ``FRAGMENT_WORDS`` words, none of them a name or a number (``ious.``, ``the``);
  repetition    a loop (``acceptability.repetitive``: ``the disease the disease the disease``);
  off-topic     at least ``FRAGMENT_WORDS`` words and no content word (the scorer's stems and synonyms) in
                common with the question or the key facts: a continuation of some other text. A bare name
                or number is an answer (right or wrong), never off-topic; text that mentions the
                question's disease counts as on topic, so this rule errs towards calling text an answer.
The wrong-answer modes above presuppose an attempt to answer; a fragment labelled boundary_confusion
would count the small model's failures to produce language as confusions about the question.
"""

from __future__ import annotations

import random
import re

from services.evaluator.scoring.acceptability import repetitive
from services.evaluator.scoring.normalize import STOPWORDS, content_stems, normalize
from shared.schemas.eval import ItemScore

FRAGMENT_WORDS = 3
_WORD = re.compile(r"[\w'-]+")

MATRIX_ROWS = ("correct", "confident_fabrication", "plausible_blending", "outdated_information",
               "boundary_confusion", "accurate_but_misleading")


def review_sample(ids: list[str], size: int, seed: int) -> list[str]:
    """The same ``size`` ids for the same benchmark and seed, in review order."""
    ordered = sorted(ids)
    return random.Random(seed).sample(ordered, min(size, len(ordered)))


def non_answer(response: str, question: str, facts: list[str]) -> str | None:
    """Why ``response`` is not an answer (fragment, repetition, off-topic), or None; see the module docstring."""
    tokens = _WORD.findall(response)
    if len(tokens) < FRAGMENT_WORDS and not any(
            t[0].isupper() and t.lower() not in STOPWORDS or any(c.isdigit() for c in t) for t in tokens):
        return "fragment"
    if repetitive(response):
        return "repetition"
    topic = {w for text in (question, *facts) for w in content_stems(normalize(text))}
    if len(tokens) >= FRAGMENT_WORDS and topic and not topic & set(content_stems(normalize(response))):
        return "off-topic"
    return None


def proxy_label(score: ItemScore, response: str | None = None, question: str = "") -> tuple[str, str | None]:
    """(correctness, failure mode) from automatic scores; see the module docstring.

    Without the ``response`` text the non-answer rule cannot apply (older callers, file mode).
    """
    present = sum(score.facts_present)
    if score.hedging.get("refusal") and present == 0:
        return "refusal", None
    if score.accuracy == 1.0:
        return "correct", None
    correctness = "partially_correct" if present else "incorrect"
    if score.non_answer:
        return correctness, "non_answer"
    if score.fabricated_entities and not score.hedging.get("hedged"):
        return correctness, "confident_fabrication"
    attempted = any(f.verdict != "absent" for f in score.facts) or (
        score.answer is not None and score.answer.verdict != "absent")
    if response is not None and not attempted and non_answer(response, question, [f.fact for f in score.facts]):
        return correctness, "non_answer"
    if score.category == "temporal_accuracy":
        return correctness, "outdated_information"
    if any(f.rejected for f in score.facts):
        return correctness, "plausible_blending"
    if score.accuracy >= 0.5:
        return correctness, "accurate_but_misleading"
    return correctness, "boundary_confusion"


def matrix_row(correctness: str, failure_mode: str | None) -> str | None:
    """The §8.3 matrix row of a label; refusals and non-answers are counted apart (the seed's matrix has no row)."""
    if correctness == "correct":
        return "correct"
    return failure_mode if failure_mode in MATRIX_ROWS else None
