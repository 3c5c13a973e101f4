"""The scorer against labelled cases: fact agreement, fabrication precision, hedging, normalisation."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from services.evaluator.inputs import load_benchmark
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.fabrication import Lexicon, fabricated
from services.evaluator.scoring.facts import Embedder, FactScorer
from services.evaluator.scoring.hedging import aggregate, hedging
from services.evaluator.scoring.normalize import normalize
from services.evaluator.settings import BENCHMARK, EvalConfig

DATA = BENCHMARK.parent
SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def scorer() -> FactScorer:
    return FactScorer(EvalConfig(), default_entities(), Embedder())


def test_scorer_agrees_with_labelled_cases(scorer):
    cases = _jsonl(DATA / "scoring_cases.jsonl")
    assert len(cases) >= 80
    per_kind: dict[str, list[bool]] = defaultdict(list)
    misses = []
    for case in cases:
        verdict = scorer.judge(case["question"], [case["key_fact"]], case["response"])[0]
        agree = verdict.present == case["present"]
        per_kind[case["kind"]].append(agree)
        if not agree:
            misses.append(f"{case['case_id']} ({case['kind']}): {verdict.method} {verdict.rejected}")
    overall = sum(sum(v) for v in per_kind.values()) / len(cases)
    print(f"\nscorer agreement on {len(cases)} labelled cases: {overall:.1%}")
    for kind, agreed in sorted(per_kind.items()):
        print(f"  {kind:14s} {sum(agreed)}/{len(agreed)}")
    print("  disagreements: " + "; ".join(misses))
    assert {"exact", "paraphrase", "abbreviation", "number", "negation", "wrong_subject", "unrelated"} <= set(per_kind)
    assert overall >= 0.9


def test_reference_answers_state_their_own_key_facts(scorer):
    """Guards against over-eager negation/subject rules: a reference answer must score (almost) fully."""
    items = load_benchmark(BENCHMARK)
    verdicts = [v for i in items for v in scorer.judge(i.question, i.fact_texts, i.reference_answer)]
    share = sum(v.present for v in verdicts) / len(verdicts)
    print(f"\nreference answers: {share:.1%} of {len(verdicts)} key facts found")
    assert share >= 0.97


@pytest.mark.parametrize("question,fact,response,present,reason", [
    ("How does riluzole work?", "inhibits glutamate release",
     "Riluzole does not inhibit glutamate release.", False, "negation"),
    ("What did the PHOENIX trial show?", "did not meet primary endpoint",
     "PHOENIX did not meet its primary endpoint.", True, None),
    ("What did the PHOENIX trial show?", "did not meet primary endpoint",
     "PHOENIX met its primary endpoint.", False, "negation"),
    ("How does tofersen work?", "antisense oligonucleotide",
     "Edaravone is an antisense oligonucleotide.", False, "wrong_subject"),
    ("How does tofersen work?", "antisense oligonucleotide",
     "Qalsody (tofersen) is an ASO given intrathecally.", True, None),
    ("How many items does the ALSFRS-R have?", "12 items",
     "The ALSFRS-R has many items.", False, None),
])
def test_polarity_and_strictness(scorer, question, fact, response, present, reason):
    verdict = scorer.judge(question, [fact], response)[0]
    assert (verdict.present, verdict.rejected) == (present, reason)


def test_normalisation_unifies_numbers_units_and_abbreviations():
    assert normalize("two thousand eleven") == "2011"
    assert normalize("fifty milligrams") == normalize("50 mg") == "50 mg"
    assert normalize("two to three months") == normalize("2-3 months")
    assert normalize("ninety-seven per cent") == normalize("97%")
    assert normalize("TARDBP") == normalize("TDP-43")
    assert normalize("amyotrophic lateral sclerosis functional rating scale revised") == normalize("ALSFRS-R")


def test_fabrication_precision_on_labelled_cases():
    corpus = [json.loads(line)["text"] for p in sorted(SAMPLE.glob("*.jsonl")) for line in p.read_text().splitlines()]
    lexicon = Lexicon.build(corpus, default_entities())
    tp = fp = fn = 0
    for case in _jsonl(DATA / "fabrication_cases.jsonl"):
        got, expected = set(fabricated(case["response"], lexicon)), set(case["fabricated"])
        tp, fp, fn = tp + len(got & expected), fp + len(got - expected), fn + len(expected - got)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    print(f"\nfabrication: precision {precision:.1%}, recall {recall:.1%} ({tp} found, {fp} false, {fn} missed)")
    assert precision >= 0.9 and recall >= 0.8


def test_trial_id_absent_from_corpus_is_fabricated_and_present_one_is_not():
    lexicon = Lexicon.build(["The VALOR trial (NCT02623699) tested tofersen."], default_entities())
    assert fabricated("See NCT02623699 and NCT09999999.", lexicon) == ["NCT09999999"]


def test_hedging_counts_cues_and_refusals():
    h = hedging("Riluzole may slow progression; it is thought to reduce glutamate, possibly.")
    assert h["count"] == 3 and h["hedged"] and not h["refusal"]
    assert hedging("The context does not contain enough information to answer.")["refusal"]
    summary = aggregate([h, hedging("Riluzole inhibits glutamate release.")])
    assert summary["hedged_rate"] == 0.5 and summary["cues"]["may"] == 1
