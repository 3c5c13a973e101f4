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
from services.evaluator.settings import BENCHMARK, EvalConfig, EvaluatorSettings, for_run
from services.evaluator.stages import score as scoring
from shared import runs
from shared.schemas.eval import GoldEvidence, Response, RetrievedChunk, ScoreFile
from shared.settings import StoreSettings
from shared.store import LocalStore

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


def test_score_stage_adds_claims_to_every_system_and_faithfulness_to_rag(tmp_path):
    """Store mode: scores.json items and summary gain claims; RAG items also faithfulness; the RAG run
    publishes its gold evidence; the run's metrics carry the claim counts and hallucination rate."""
    items = [i for i in load_benchmark(BENCHMARK) if i.id in ("diag-007", "drug-001")]
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([i.model_dump(mode="json") for i in items]))
    store, work = LocalStore(tmp_path / "store"), tmp_path / "work"
    docs = [{"id": "criteria-review", "source": "sample", "category": "research", "title": "Criteria",
             "text": GOLD_COAST}, {"id": "doc-2", "source": "sample", "category": "educational",
                                   "title": "Edaravone", "text": FILLER[0]}]

    def publish(stage: str, files: dict[str, str]) -> None:
        def body(writer, scratch):
            for name, text in files.items():
                writer.put_bytes(name, text.encode())
        runs.run_stage(store, stage, {}, [], body, work_dir=work)

    publish("process", {"corpus.txt": "\n\n".join(d["text"] for d in docs) + "\n",
                        "train.jsonl": json.dumps(docs[0]) + "\n", "val.jsonl": json.dumps(docs[1]) + "\n"})
    answers = {"diag-007": "The Gold Coast criteria were published in 2015 [1].", "drug-001": "I do not know."}
    rag = [{"id": i.id, "response": answers[i.id], "retrieved": [c.model_dump() for c in FIVE]} for i in items]
    publish("eval-rag", {"responses.jsonl": "".join(json.dumps(r) + "\n" for r in rag)})
    publish("eval-scratch", {"responses.jsonl": "".join(json.dumps({"id": i.id, "response": answers[i.id]}) + "\n"
                                                        for i in items)})
    settings = EvaluatorSettings(store=StoreSettings(root=tmp_path / "store"), work_dir=work,
                                 eval=EvalConfig(benchmark=bench))
    for system in ("scratch", "rag"):
        manifest, ran = scoring.run(store, for_run(settings, system=system))
        assert ran
        scores = ScoreFile.model_validate_json(store.get_bytes(manifest.output("scores.json").key))
        by_id = {s.id: s for s in scores.items}
        assert [c.verdict for c in by_id["diag-007"].claims] == ["contradicted"]
        assert by_id["drug-001"].claims == []  # a refusal makes no claim
        claims = scores.summary["claims"]
        assert (claims["n_claims"], claims["n_items_without_claims"]) == (1, 1)
        assert manifest.metrics["claims"] == 1 and manifest.metrics["hallucination_rate"] == 1.0
        if system == "scratch":
            assert by_id["diag-007"].faithfulness is None and "faithfulness" not in scores.summary
            continue
        faith = by_id["diag-007"].faithfulness
        assert faith.claims[0].verdict == "contradicted" and faith.citations[0].chunk == 1
        assert faith.gold_documents == ["criteria-review"] and faith.reciprocal_rank == 1.0
        assert scores.summary["faithfulness"]["n_items"] == 2 and manifest.metrics["citation_correctness"] == 0.0
        gold = [GoldEvidence.model_validate_json(line)
                for line in store.get_bytes(manifest.output("gold_evidence.jsonl").key).decode().splitlines()]
        assert {g.id: g.documents for g in gold}["diag-007"] == ["criteria-review"]


def test_real_rag_answers_are_faithful_to_their_chunks_and_cite_nothing(sample_scorer):
    """Two real RAG answers (real_answers.json says where from), cut short by the token limit."""
    real = json.loads((Path(__file__).resolve().parent / "real_answers.json").read_text())["responses"]
    items = {i.id: i for i in load_benchmark(BENCHMARK)}
    pairs = [(items[r["id"]], Response.model_validate(r)) for r in real if r["system"] == "rag"]
    assert len(pairs) == 2
    sample_scorer.prepare(pairs)
    for item, response in pairs:
        scored = sample_scorer.score(item, response)
        faith = scored["faithfulness"]
        [claim] = faith.claims
        assert claim.verdict == "supported" and claim.source in {f"[{n}]" for n in range(1, 6)}
        assert faith.supported == 1.0 and faith.citations == [] and faith.citation_correct is None
        assert faith.gold_documents and faith.answer_relevancy > 0.5
