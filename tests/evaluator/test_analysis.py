"""The report's figures from hand-made scores: claim hallucination over all answers, the Holm family, and the
sentence that says what the corpus is."""

from __future__ import annotations

import pytest

from services.evaluator import stats
from services.evaluator.coverage import absent_facts
from services.evaluator.report import analysis
from services.evaluator.report.compose import corpus_sentence
from shared.schemas.eval import BenchmarkItem, ClaimJudgement, FactMatch, ItemScore, ScoreFile


def _score(item: str, claims: list[str] | None, correct: bool = False, category: str = "drug_treatment") -> ItemScore:
    fact = FactMatch(fact="riluzole", present=correct, verdict="supported" if correct else "absent")
    return ItemScore(id=item, category=category, facts_present=[correct], accuracy=float(correct),
                     fabricated_entities=[], hedging={}, facts=[fact],
                     claims=None if claims is None else [ClaimJudgement(text="c", verdict=v) for v in claims])


def _system(name: str, scores: list[ItemScore]) -> analysis.SystemData:
    return analysis.SystemData(name, ScoreFile(items=scores, summary={}), [])


def test_claims_are_pooled_over_all_answers_and_a_non_answer_is_its_own_outcome():
    # One ten-claim answer with one hallucinated claim, one one-claim fragment that is hallucinated,
    # three answers without a claim and one fully supported answer.
    scores = [_score("a", ["supported"] * 9 + ["contradicted"]), _score("b", ["unverifiable"]),
              _score("c", []), _score("d", []), _score("e", []), _score("f", ["supported", "supported"])]
    figures = analysis.claim_figures(_system("scratch", scores), seed=0)
    assert figures["answers"] == 6 and figures["claims"] == 13
    pooled = figures["pooled"]
    assert pooled["hallucinated"].estimate == pytest.approx(2 / 13)  # not the mean of per-answer shares (0.55)
    assert pooled["contradicted"].estimate == pytest.approx(1 / 13)
    assert pooled["unverifiable"].estimate == pytest.approx(1 / 13)
    assert pooled["hallucinated"].n == 6, "the interval resamples every answer, those without claims too"
    per = figures["per_answer"]
    assert per["hallucinated"].estimate == pytest.approx(2 / 6)
    assert per["all_supported"].estimate == pytest.approx(1 / 6)
    assert per["no_claim"].estimate == pytest.approx(3 / 6)
    assert sum(per[k].estimate for k in ("hallucinated", "all_supported", "no_claim")) == pytest.approx(1.0)
    assert analysis.claim_figures(_system("old", [_score("a", None)]), seed=0) is None


def test_every_printed_mcnemar_test_is_one_holm_family_and_small_groups_stay_out():
    ids = [f"q{i}" for i in range(12)]
    # a correct on all 12; b on the first 2; c on none: 10, 12 and 2 discordant pairs.
    systems = {
        "a": _system("a", [_score(i, ["supported"], correct=True) for i in ids]),
        "b": _system("b", [_score(i, ["unverifiable"] if n >= 2 else [], correct=n < 2) for n, i in enumerate(ids)]),
        "c": _system("c", [_score(i, ["contradicted"], category="gene_mutation" if n < 3 else "drug_treatment")
                           for n, i in enumerate(ids)]),
    }
    accuracy = analysis.comparisons(systems, ["drug_treatment", "gene_mutation"], seed=0)
    hallucination = analysis.hallucination_comparisons(systems, seed=0)
    size = analysis.adjust_family(accuracy, hallucination)
    tested = [c for c in accuracy + hallucination if not c["too_small"]]
    assert size == len(tested) and all(c["mcnemar"]["p_holm"] is None for c in accuracy if c["too_small"])
    raw = [c["mcnemar"]["p_value"] for c in tested]
    assert [c["mcnemar"]["p_holm"] for c in tested] == pytest.approx(stats.holm(raw))
    smallest = min(range(len(raw)), key=raw.__getitem__)
    assert tested[smallest]["mcnemar"]["p_holm"] == pytest.approx(min(1.0, len(raw) * raw[smallest]))
    a_b = next(c for c in accuracy if c["category"] is None and (c["a"], c["b"]) == ("a", "b"))
    assert (a_b["mcnemar"]["a_only"], a_b["mcnemar"]["b_only"]) == (10, 0)
    # b hallucinates on 10 answers and says nothing on 2; a on none: 0 / 10 discordant
    b_vs_a = next(c for c in hallucination if (c["a"], c["b"]) == ("a", "b"))
    assert (b_vs_a["mcnemar"]["a_only"], b_vs_a["mcnemar"]["b_only"]) == (0, 10)


def test_the_corpus_sentence_counts_the_stated_facts_with_coverage_and_names_the_bundled_sample():
    items = [BenchmarkItem(id="a", category="drug_treatment", question="q?", reference_answer="r", source="s",
                           key_facts=["riluzole", "edaravone", {"text": "ALS", "counted": False}]),
             BenchmarkItem(id="b", category="gene_mutation", question="q?", reference_answer="r", source="s",
                           key_facts=["SOD1"])]
    absent = absent_facts(items, ["Riluzole was approved in 1995 for ALS."])
    assert [f.text for f in absent] == ["edaravone", "SOD1"]
    sample = corpus_sentence(items, absent, ["scrape-sample"])
    assert "bundled sample, which was written together with the benchmark" in sample
    assert "2 of the benchmark's 4 key facts (1 of the 3 counted ones) are stated in it" in sample
    scraped = corpus_sentence(items, absent, ["scrape-pmc", "scrape-web"])
    assert scraped.startswith("The corpus comes from scrape-pmc, scrape-web: 2 of") and "bundled" not in scraped
