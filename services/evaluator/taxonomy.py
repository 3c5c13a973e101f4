"""The failure taxonomy (design §8.3): the review sample, and automatic proxies when nobody has reviewed.

The proxies are rules over the automatic scores, not judgements; the report says which it shows.
  refusal                 the response declines to answer (refusal cue) and states no key fact
  correct                 every key fact present
  confident_fabrication   a fabricated drug/gene/trial name, without hedging
  outdated_information    a temporal_accuracy item answered incompletely
  plausible_blending      a key fact stated but negated or given to the wrong subject (right words, wrong claim)
  accurate_but_misleading at least half the key facts present, the rest missing
  boundary_confusion      fewer than half present: an answer about something else
"""

from __future__ import annotations

import random

from shared.schemas.eval import ItemScore

MATRIX_ROWS = ("correct", "confident_fabrication", "plausible_blending", "outdated_information",
               "boundary_confusion", "accurate_but_misleading")


def review_sample(ids: list[str], size: int, seed: int) -> list[str]:
    """The same ``size`` ids for the same benchmark and seed, in review order."""
    ordered = sorted(ids)
    return random.Random(seed).sample(ordered, min(size, len(ordered)))


def proxy_label(score: ItemScore) -> tuple[str, str | None]:
    """(correctness, failure mode) from automatic scores; see the module docstring."""
    present = sum(score.facts_present)
    if score.hedging.get("refusal") and present == 0:
        return "refusal", None
    if score.accuracy == 1.0:
        return "correct", None
    correctness = "partially_correct" if present else "incorrect"
    if score.fabricated_entities and not score.hedging.get("hedged"):
        return correctness, "confident_fabrication"
    if score.category == "temporal_accuracy":
        return correctness, "outdated_information"
    if any(f.rejected for f in score.facts):
        return correctness, "plausible_blending"
    if score.accuracy >= 0.5:
        return correctness, "accurate_but_misleading"
    return correctness, "boundary_confusion"


def matrix_row(correctness: str, failure_mode: str | None) -> str | None:
    """The §8.3 matrix row of a label; refusals are counted apart (the seed's matrix has no row)."""
    if correctness == "correct":
        return "correct"
    return failure_mode
