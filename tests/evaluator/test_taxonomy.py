"""Automatic failure labels: an output that is not an answer is a non_answer, not a kind of wrong answer."""

from __future__ import annotations

import pytest

from services.evaluator.taxonomy import matrix_row, non_answer, proxy_label
from shared.schemas.eval import FactMatch, ItemScore

QUESTION = "How does riluzole work in ALS?"
FACTS = ["inhibits glutamate release", "sodium channels"]


def _score(verdicts: list[str], fabricated=(), hedged=False, refusal=False, rejected=None) -> ItemScore:
    facts = [FactMatch(fact=f, present=v == "supported", verdict=v, rejected=rejected) for f, v in zip(FACTS, verdicts)]
    present = [f.present for f in facts]
    return ItemScore(id="drug-001", category="drug_treatment", facts_present=present,
                     accuracy=sum(present) / len(present), fabricated_entities=list(fabricated), facts=facts,
                     hedging={"hedged": hedged, "refusal": refusal, "count": int(hedged), "cues": []})


@pytest.mark.parametrize("response, kind", [
    ("ious.", "fragment"),  # the demo model's answer to "What is ALS?"
    ("", "fragment"),
    ("the", "fragment"),
    ("of the disease of the disease of the disease of the disease", "repetition"),
    ("and the and the and the and the and the", "repetition"),
    ("The weather in the valley was cold and the river froze early that winter.", "off-topic"),
])
def test_fragments_loops_and_unrelated_text_are_not_answers(response, kind):
    assert non_answer(response, QUESTION, FACTS) == kind


@pytest.mark.parametrize("response", [
    "Riluzole.",  # a bare name answers, rightly or wrongly
    "1995",
    "Riluzole blocks sodium channels and reduces glutamate release.",
    "It works by protecting motor neurons in ALS.",  # on topic though it states no key fact
])
def test_attempts_to_answer_are_answers(response):
    assert non_answer(response, QUESTION, FACTS) is None


def test_a_fragment_with_no_fact_is_a_non_answer_not_boundary_confusion():
    score = _score(["absent", "absent"])
    assert proxy_label(score) == ("incorrect", "boundary_confusion")  # without the text the rule cannot apply
    assert proxy_label(score, "ious.", QUESTION) == ("incorrect", "non_answer")
    assert matrix_row("incorrect", "non_answer") is None  # outside the §8.3 matrix, like refusals


def test_wrong_answers_keep_their_wrong_answer_modes():
    assert proxy_label(_score(["absent", "absent"], fabricated=["Neurovaxine"]), "Neurovaxine.", QUESTION) == (
        "incorrect", "confident_fabrication")
    contradicted = _score(["contradicted", "absent"], rejected="negation")
    assert proxy_label(contradicted, "ious ious.", QUESTION) == ("incorrect", "plausible_blending")
    assert proxy_label(_score(["absent", "absent"]), "It protects motor neurons in ALS patients.", QUESTION) == (
        "incorrect", "boundary_confusion")
    assert proxy_label(_score(["absent", "absent"], refusal=True), "I cannot answer.", QUESTION) == ("refusal", None)
