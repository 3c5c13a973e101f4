"""RAG faithfulness (issue 18): claims against the retrieved chunks, citations, relevancy, gold evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.evaluator.inputs import load_benchmark
from services.evaluator.scoring.claims import ClaimJudge, split_claims
from services.evaluator.scoring.entities import default_entities
from services.evaluator.scoring.facts import Embedder
from services.evaluator.scoring.faithfulness import (
    FaithfulnessScorer,
    context_precision,
    find_citations,
    reciprocal_rank,
)
from services.evaluator.scoring.hallucination import HallucinationScorer
from services.evaluator.settings import BENCHMARK, EvalConfig
from shared.schemas.eval import GoldEvidence, Response, RetrievedChunk

SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"
GOLD_COAST = ("The Gold Coast criteria, proposed in 2020, require progressive motor impairment and upper and "
              "lower motor neuron dysfunction in at least one body region.")
FILLER = [
    "Edaravone is a free radical scavenger given intravenously in cycles.",
    "Non-invasive ventilation prolongs survival in patients with respiratory insufficiency.",
    "Percutaneous endoscopic gastrostomy helps patients with dysphagia keep their weight.",
    "Fasciculations are common in ALS but also occur in healthy people.",
]


def chunk(n: int, text: str, source: str | None = None) -> RetrievedChunk:
    return RetrievedChunk(chunk_id=f"{source or f'doc-{n}'}#0", source_id=source or f"doc-{n}", title=f"Doc {n}",
                          text=text, distance=0.1 * n)


FIVE = [chunk(1, GOLD_COAST, "criteria-review")] + [chunk(i, t) for i, t in enumerate(FILLER, 2)]


@pytest.fixture(scope="module")
def judge() -> ClaimJudge:
    return ClaimJudge(EvalConfig(), default_entities(), Embedder())


@pytest.fixture(scope="module")
def faithful(judge) -> FaithfulnessScorer:
    return FaithfulnessScorer(judge, {"criteria-review", "doc-2", "unretrieved-doc"}, {})


def score(faithful: FaithfulnessScorer, response: str, gold: GoldEvidence | None = None):
    return faithful.score("What are the Gold Coast criteria for ALS?", response, FIVE, split_claims(response), gold)


def test_a_misdated_criterion_is_contradicted_by_its_own_chunk(faithful):
    result = score(faithful, "The Gold Coast criteria were published in 2015 [1].")
    [claim] = result.claims
    assert (claim.verdict, claim.rule, claim.source) == ("contradicted", "other_value", "[1]")
    [citation] = result.citations
    assert citation.retrieved and not citation.supports
    assert result.supported == 0.0 and result.citation_correct == 0.0


def test_a_sixth_source_cited_when_five_chunks_were_given_is_not_retrieved(faithful):
    result = score(faithful, "The Gold Coast criteria require progressive motor impairment [6].")
    [citation] = result.citations
    assert (citation.marker, citation.chunk, citation.retrieved, citation.supports) == ("[6]", None, False, False)
    assert result.claims[0].verdict == "supported" and result.supported == 1.0


def test_a_citation_is_correct_when_its_chunk_supports_the_sentence(faithful):
    result = score(faithful, "The Gold Coast criteria require progressive motor impairment [1]. "
                             "Edaravone is given intravenously [1].")
    assert [(c.chunk, c.supports) for c in result.citations] == [(1, True), (1, False)]
    assert result.citation_correct == 0.5


def test_sources_named_by_id_are_citations_retrieved_or_not(faithful):
    found = find_citations("Motor impairment is required (source: criteria-review). See also unretrieved-doc "
                           "and [2, 4-5].", FIVE, {"unretrieved-doc"})
    assert [(m, n) for m, _, n in found] == [("source: criteria-review", 1), ("[2]", 2), ("[4]", 4), ("[5]", 5),
                                             ("unretrieved-doc", None)]


def test_answer_relevancy_prefers_an_answer_on_the_question(faithful):
    on = score(faithful, "The Gold Coast criteria require motor impairment in one body region.")
    off = score(faithful, "Gastrostomy helps people keep their weight.")
    assert on.answer_relevancy > off.answer_relevancy


def test_context_precision_and_reciprocal_rank_follow_the_ragas_definitions(faithful):
    assert context_precision([False, True, False, True]) == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert reciprocal_rank([False, True, False, True]) == 0.5
    assert context_precision([False] * 5) == 0.0 and reciprocal_rank([False] * 5) == 0.0
    gold = GoldEvidence(id="diag-007", documents=["doc-3"], facts={"doc-3": [0]}, needed=1)
    result = score(faithful, "The Gold Coast criteria require motor impairment.", gold)
    assert (result.context_precision, result.reciprocal_rank) == (pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert score(faithful, "The Gold Coast criteria require motor impairment.").context_precision is None


@pytest.fixture(scope="module")
def sample_scorer() -> HallucinationScorer:
    docs = [(d["id"], d["text"]) for p in sorted(SAMPLE.glob("*.jsonl")) for d in map(json.loads, p.read_text().splitlines())]
    return HallucinationScorer(EvalConfig(), default_entities(), Embedder(), docs, seed=0)


def test_gold_evidence_holds_the_documents_that_state_the_key_facts(sample_scorer):
    items = {i.id: i for i in load_benchmark(BENCHMARK)}
    riluzole = next(i for i in items.values() if "approve riluzole" in i.question)
    gold = sample_scorer.gold_finder.find(riluzole)
    # the sample's riluzole review states "approval from the US Food and Drug Administration (FDA) in 1995"
    assert "sample-pmc-0001-abstract" in gold.documents
    assert all(len(gold.facts[d]) >= gold.needed for d in gold.documents)
    unanswerable = next(i for i in items.values() if not i.answerable)
    assert sample_scorer.gold_finder.find(unanswerable).documents == []


def test_only_responses_with_retrieved_chunks_get_a_faithfulness_block(sample_scorer):
    item = next(i for i in load_benchmark(BENCHMARK) if "approve riluzole" in i.question)
    rag = Response(id=item.id, response="Riluzole was approved by the FDA in 1995 [1].",
                   retrieved=[chunk(1, "Riluzole received FDA approval in 1995.", "sample-pmc-0001-abstract")])
    scratch = Response(id=item.id, response="Riluzole was approved by the FDA in 2006.")
    sample_scorer.prepare([(item, rag), (item, scratch)])
    with_context, without = sample_scorer.score(item, rag), sample_scorer.score(item, scratch)
    assert "faithfulness" not in without and without["claims"][0].verdict == "contradicted"
    faith = with_context["faithfulness"]
    assert with_context["claims"][0].verdict == "supported" and faith.supported == 1.0
    assert faith.citation_correct == 1.0 and faith.reciprocal_rank == 1.0
