"""Claim precision (issue 18): splitting answers into atomic claims, and judging each against evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.evaluator.inputs import load_benchmark
from services.evaluator.scoring.claims import ClaimJudge, shares, split_claims
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.evidence import SentencePool, sentences
from services.evaluator.scoring.facts import Embedder
from services.evaluator.scoring.hallucination import HallucinationScorer, claim_summary
from services.evaluator.settings import BENCHMARK, EvalConfig
from shared.schemas.eval import ClaimJudgement, Response

REFERENCE = "Riluzole (Rilutek) was approved by the FDA in 1995, making it the first drug approved for ALS."
CORPUS = [
    "Riluzole reduces glutamate release and blocks certain sodium channels.",
    "The P525L mutation lies in the FUS gene and causes an aggressive juvenile form of ALS.",
    "Edaravone is a free radical scavenger given intravenously.",
    "The only therapy remains riluzole, which acts by reducing glutamate release rather than by enhancing uptake.",
]


@pytest.fixture(scope="module")
def judge() -> ClaimJudge:
    return ClaimJudge(EvalConfig(), default_entities(), Embedder())


def pool(texts: list[str], source: str) -> SentencePool:
    return SentencePool.build([(t, source, f"doc-{i}") for i, t in enumerate(texts)])


@pytest.fixture(scope="module")
def pools() -> list[SentencePool]:
    return [pool([REFERENCE], "reference"), pool(CORPUS, "corpus")]


def verdict(judge: ClaimJudge, pools: list[SentencePool], claim: str) -> ClaimJudgement:
    return judge.judge([claim], pools)[0]


def test_sentences_do_not_break_at_abbreviations_or_decimals():
    text = "Doses (e.g. 50 mg) follow Brooks et al. 2000. It is 2.5 times higher.\n- A bullet line"
    assert sentences(text) == ["Doses (e.g. 50 mg) follow Brooks et al. 2000.", "It is 2.5 times higher.",
                               "A bullet line"]


def test_coordinated_clauses_with_a_new_subject_are_separate_claims():
    assert split_claims("It inhibits glutamate release, and it is taken twice daily at 50 mg.") == [
        "It inhibits glutamate release", "it is taken twice daily at 50 mg."]
    # a short side is not a clause: the list stays one claim
    assert split_claims("Riluzole, edaravone and tofersen are approved drugs.") == [
        "Riluzole, edaravone and tofersen are approved drugs."]


def test_a_list_of_short_items_gives_one_claim_per_item():
    assert split_claims("Side effects include nausea, dizziness and liver enzyme elevation.") == [
        "Side effects include nausea", "Side effects include dizziness", "Side effects include liver enzyme elevation"]


def test_questions_refusals_fragments_and_repeats_are_not_claims():
    text = ("Answer: What is ALS? The context does not contain enough information. The the. "
            "Riluzole slows ALS [2]. Riluzole slows ALS.")
    assert split_claims(text) == ["Riluzole slows ALS."]
    assert split_claims("of the of the ,") == []


def test_a_misdated_approval_is_contradicted_by_the_reference(judge, pools):
    j = verdict(judge, pools, "The FDA approved riluzole in 2006.")
    assert (j.verdict, j.rule, j.source) == ("contradicted", "other_value", "reference")


def test_the_reference_states_the_right_year(judge, pools):
    j = verdict(judge, pools, "Riluzole was approved by the FDA in 1995.")
    assert (j.verdict, j.source) == ("supported", "reference")


def test_a_paraphrase_in_the_corpus_supports_a_claim(judge, pools):
    j = verdict(judge, pools, "Riluzole inhibits the release of glutamate.")
    assert (j.verdict, j.source) == ("supported", "corpus")


def test_the_opposite_direction_is_contradicted_not_found_in_a_bag_of_stems(judge, pools):
    """"reducing glutamate release rather than enhancing uptake" holds every stem of "increases
    glutamate release"; the claim is still the opposite of the corpus."""
    j = verdict(judge, pools, "It increases glutamate release.")
    assert (j.verdict, j.rule) == ("contradicted", "opposite")


def test_a_denial_of_a_stated_fact_is_contradicted(judge, pools):
    j = verdict(judge, pools, "Edaravone is not a free radical scavenger.")
    assert (j.verdict, j.rule) == ("contradicted", "negation")


def test_another_gene_for_the_same_variant_is_contradicted(judge, pools):
    j = verdict(judge, pools, "The P525L mutation lies in the SOD1 gene.")
    assert (j.verdict, j.rule) == ("contradicted", "entity")


def test_a_claim_no_evidence_speaks_to_is_unverifiable(judge, pools):
    j = verdict(judge, pools, "Riluzole was developed by a Martian company in 1802.")
    assert j.verdict == "unverifiable" and j.evidence is None


def test_reference_answers_claims_are_supported_by_their_own_reference(judge):
    """Guards against over-eager contradiction rules: an answer that is the reference must pass."""
    cases = [(split_claims(i.reference_answer), [pool([i.reference_answer], "reference")])
             for i in load_benchmark(BENCHMARK)]
    judge.prefetch(cases)
    judged = [j for claims, pools in cases for j in judge.judge(claims, pools)]
    share = sum(j.verdict == "supported" for j in judged) / len(judged)
    contradicted = [j.text for j in judged if j.verdict == "contradicted"]
    print(f"\nreference answers: {share:.1%} of {len(judged)} claims supported; contradicted: {contradicted}; "
          f"unverifiable: {[j.text for j in judged if j.verdict == 'unverifiable']}")
    assert len(judged) >= len(cases)
    assert share >= 0.95 and not contradicted


def test_responses_without_claims_are_counted_apart_not_as_zero_hallucination():
    supported = ClaimJudgement(text="a b c", verdict="supported")
    invented = ClaimJudgement(text="d e f", verdict="unverifiable")
    per_item = [[supported, invented], [], [supported]] * 5
    summary = claim_summary(per_item, seed=0)
    assert summary["n_items"] == 15 and summary["n_items_without_claims"] == 5 and summary["n_claims"] == 15
    rate = summary["hallucination_rate"]
    assert rate["n"] == 10 and rate["estimate"] == pytest.approx(0.25)
    assert rate["low"] <= 0.25 <= rate["high"]
    assert shares([]) is None


REAL = json.loads((Path(__file__).resolve().parent / "real_answers.json").read_text())["responses"]
SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"


@pytest.fixture(scope="module")
def real_claims() -> dict[str, list[ClaimJudgement]]:
    """Real answers (closed-book Gemma 3 270M and the from-scratch model; real_answers.json says where
    from), judged against their references and the bundled sample corpus."""
    docs = [(d["id"], d["text"]) for p in sorted(SAMPLE.glob("*.jsonl")) for d in map(json.loads, p.read_text().splitlines())]
    scorer = HallucinationScorer(EvalConfig(), default_entities(), Embedder(), docs)
    items = {i.id: i for i in load_benchmark(BENCHMARK)}
    pairs = [(items[r["id"]], Response.model_validate(r)) for r in REAL if r["system"] != "rag"]  # ids repeat
    scorer.prepare(pairs)
    return {item.id: scorer.score(item, response)["claims"] for item, response in pairs}


def test_real_answers_misdated_or_misnumbered_are_contradicted(real_claims):
    verdicts = {k: [(c.verdict, c.rule) for c in v] for k, v in real_claims.items()}
    assert verdicts["drug-014"] == [("contradicted", "other_value")]  # tofersen "in 2008"; the corpus: April 2023
    assert verdicts["gene-001"][0] == ("contradicted", "other_value")  # first ALS gene "in 1999"; SOD1 in 1993
    assert verdicts["temporal-012"] == [("contradicted", "other_value")]  # Gehrig diagnosed "in 1919"; 1939
    assert verdicts["gene-024"] == [("contradicted", "other_value")]  # "100% of ALS cases are familial"; ~10 %
    assert verdicts["temporal-008"] == [("contradicted", "negation")]  # masitinib "FDA approved"; it is not


def test_real_answers_fragments_repeats_and_vague_claims(real_claims):
    assert real_claims["drug-003"] == []  # "100%" is no claim
    # the small scratch model's noun chains (", and the trial, and the ALS") have no predicate: no claims
    assert real_claims["drug-001"] == [] and real_claims["drug-002"] == []
    assert len(real_claims["drug-012"]) == 2  # one sentence repeated until the token limit is one claim
    # "The drug is administered orally." (tofersen is intrathecal): not supported by "administered intrathecally"
    assert real_claims["drug-013"][0].verdict != "supported"


def test_a_noun_phrase_with_a_participle_after_its_article_is_not_a_claim():
    """'a feeding tube.' (the experiment's final checkpoint answered it 75 times) states nothing checkable."""
    assert split_claims("a feeding tube.") == []
    assert split_claims("The affected limb is weak.") == ["The affected limb is weak."]
    assert split_claims("Patients receiving riluzole lived longer.") == ["Patients receiving riluzole lived longer."]
