"""Strict correctness: the same bar for an item of one, two or three key facts and for a yes/no item,
judged by the real fact scorer; the graded accuracy stays beside it."""

from __future__ import annotations

import pytest

from services.evaluator.score import is_correct, judge_item
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.facts import Embedder, FactScorer
from services.evaluator.settings import EvalConfig
from shared.schemas.eval import BenchmarkItem, ItemScore

GENES = BenchmarkItem(id="genes", category="gene_mutation", question="Which genes are most often mutated in ALS?",
                      reference_answer="C9orf72, SOD1 and TARDBP.", key_facts=["C9orf72", "SOD1", "TARDBP"],
                      source="test")
DRUGS = BenchmarkItem(id="drugs", category="drug_treatment", question="Which drugs are approved for ALS?",
                      reference_answer="Riluzole and edaravone.", key_facts=["riluzole", "edaravone"], source="test")
SINGLE_GENE = BenchmarkItem(id="yes-no", category="gene_mutation",
                            question="Is ALS caused by one single gene in most patients?",
                            reference_answer="No, most cases are sporadic.", key_facts=["sporadic"], source="test",
                            answer_type="yes_no", expected_answer="no")


@pytest.fixture(scope="module")
def scorer() -> FactScorer:
    return FactScorer(EvalConfig(use_embeddings=False), default_entities(), Embedder())


def _judged(scorer: FactScorer, item: BenchmarkItem, text: str) -> ItemScore:
    facts, answer, accuracy, _ = judge_item(item, text, scorer)
    return ItemScore(id=item.id, category=item.category, facts_present=[f.present for f in facts], accuracy=accuracy,
                     fabricated_entities=[], hedging={}, facts=facts, answer=answer)


@pytest.mark.parametrize(("item", "text", "accuracy", "correct"), [
    (DRUGS, "Riluzole.", 1 / 2, False),  # half the facts passed the old 50 % rule
    (DRUGS, "Riluzole and edaravone.", 1.0, True),
    (GENES, "C9orf72 and SOD1.", 2 / 3, False),  # two of three passed it too
    (GENES, "C9orf72, SOD1 and TARDBP.", 1.0, True),
    (SINGLE_GENE, "No.", 1 / 2, False),  # a bare "No." passed a yes/no item with one fact
    (SINGLE_GENE, "No, most cases are sporadic.", 1.0, True),
    (SINGLE_GENE, "Yes, most cases are sporadic.", 1 / 2, False),  # the fact, but the wrong yes/no
])
def test_an_item_is_correct_only_with_every_fact_and_the_right_yes_no(scorer, item, text, accuracy, correct):
    score = _judged(scorer, item, text)
    assert score.accuracy == pytest.approx(accuracy)
    assert is_correct(score) is correct


def test_a_contradicted_fact_makes_an_item_incorrect_even_when_it_is_not_counted(scorer):
    score = _judged(scorer, DRUGS, "Riluzole and edaravone.")
    uncounted = score.facts[0].model_copy(update={"fact": "ALS", "counted": False, "verdict": "contradicted",
                                                  "present": False})
    assert is_correct(score) and not is_correct(score.model_copy(update={"facts": [*score.facts, uncounted]}))
