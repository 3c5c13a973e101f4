"""Claim precision for every response and RAG faithfulness for those with retrieved chunks (issue 18),
and their per-system summaries with bootstrap intervals over items (``services/evaluator/stats.py``).

Per response the shares are taken over its own claims and then averaged over responses, as FActScore
averages per generation: a long rambling answer does not outweigh ten short ones. A response with no
claim (a refusal, a fragment, a question) has no share and is counted apart
(``n_items_without_claims``), never as 0 % hallucination.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from services.evaluator import stats
from services.evaluator.scoring.claims import ClaimJudge, shares, split_claims
from services.evaluator.scoring.entities import Entities
from services.evaluator.scoring.evidence import SentencePool
from services.evaluator.scoring.facts import Embedder
from services.evaluator.scoring.faithfulness import FaithfulnessScorer
from services.evaluator.scoring.gold import GoldFinder
from services.evaluator.settings import EvalConfig
from shared.schemas.eval import BenchmarkItem, ClaimJudgement, GoldEvidence, ItemScore, Response

VERDICTS = ("supported", "contradicted", "unverifiable")


class HallucinationScorer:
    def __init__(self, config: EvalConfig, entities: Entities, embedder: Embedder | None,
                 documents: Iterable[tuple[str | None, str]], seed: int = stats.SEED):
        """``documents``: (id or None, text) of the corpus; ids make gold evidence and named citations possible."""
        docs = list(documents)
        self.corpus = SentencePool.build((text, "corpus", doc_id) for doc_id, text in docs)
        self.judge = ClaimJudge(config, entities, embedder)
        self.faithfulness = FaithfulnessScorer(self.judge, {d for d, _ in docs if d}, self.corpus.idf)
        self.gold_finder = GoldFinder(self.corpus, self.judge.facts, entities)
        self.has_ids = any(d for d, _ in docs)
        self.gold: dict[str, GoldEvidence] = {}
        self.seed = seed
        self._references: dict[str, SentencePool] = {}

    def _reference(self, item: BenchmarkItem) -> SentencePool:
        if item.id not in self._references:
            self._references[item.id] = SentencePool.build([(item.reference_answer, "reference", None)],
                                                           self.corpus.idf)
        return self._references[item.id]

    def prepare(self, pairs: Sequence[tuple[BenchmarkItem, Response]]) -> None:
        """Gold evidence for the items answered with retrieval (when the corpus has document ids), and
        one batched embedding pass over every claim and candidate sentence."""
        retrieved = [item for item, r in pairs if r.retrieved is not None]
        if retrieved and self.has_ids:
            self.gold = self.gold_finder.find_all(retrieved)
        cases, texts = [], []
        for item, response in pairs:
            claims = split_claims(response.response)
            cases.append((claims, [self._reference(item), self.corpus]))
            if response.retrieved is not None:
                more, embedded = self.faithfulness.cases(item.question, response.response, response.retrieved, claims)
                cases += more
                texts += embedded
        self.judge.prefetch(cases, texts)

    def score(self, item: BenchmarkItem, response: Response) -> dict:
        """``claims`` and ``faithfulness`` fields of the item's ItemScore."""
        claims = split_claims(response.response)
        out: dict = {"claims": self.judge.judge(claims, [self._reference(item), self.corpus])}
        if response.retrieved is not None:
            out["faithfulness"] = self.faithfulness.score(item.question, response.response, response.retrieved,
                                                          claims, self.gold.get(item.id))
        return out

    def summary(self, items: Sequence[ItemScore]) -> dict:
        """The ``claims`` and (when any response had retrieval) ``faithfulness`` blocks of the summary."""
        out = {"claims": claim_summary([s.claims for s in items if s.claims is not None], self.seed)}
        judged = [s.faithfulness for s in items if s.faithfulness is not None]
        if judged:
            out["faithfulness"] = faithfulness_summary(judged, self.seed, gold_available=self.has_ids)
        return out


def _interval(values: list[float], seed: int) -> dict:
    return stats.bootstrap_mean(values, seed=seed).model_dump(mode="json")


def claim_summary(per_item: Sequence[Sequence[ClaimJudgement]], seed: int) -> dict:
    shared = [s for j in per_item if (s := shares(j))]
    every = [c for j in per_item for c in j]
    return {
        "n_items": len(per_item),
        "n_items_without_claims": sum(not j for j in per_item),
        "n_claims": len(every),
        "claims_by_verdict": {v: sum(c.verdict == v for c in every) for v in VERDICTS},
        "claims_by_rule": dict(Counter(f"{c.verdict}:{c.rule}" for c in every if c.rule).most_common()),
        **{v: _interval([s[v] for s in shared], seed) for v in VERDICTS},
        "hallucination_rate": _interval([s["hallucinated"] for s in shared], seed),
        "estimand": "mean over responses with at least one claim of the share of their claims; "
                    "hallucination = contradicted + unverifiable",
    }


def faithfulness_summary(judged: Sequence, seed: int, gold_available: bool) -> dict:
    claims = claim_summary([f.claims for f in judged], seed)
    citations = [c for f in judged for c in f.citations]
    with_gold = [f for f in judged if f.context_precision is not None]
    return {
        "n_items": len(judged),
        "n_items_without_claims": claims["n_items_without_claims"],
        "n_claims": claims["n_claims"],
        "claims_by_verdict": claims["claims_by_verdict"],
        "supported_by_context": claims["supported"],
        "contradicted_by_context": claims["contradicted"],
        "n_citations": len(citations),
        "n_items_with_citations": sum(bool(f.citations) for f in judged),
        "citations_not_retrieved": sum(not c.retrieved for c in citations),
        "citations_unsupported": sum(c.retrieved and not c.supports for c in citations),
        "citation_correctness": _interval([f.citation_correct for f in judged if f.citation_correct is not None],
                                          seed),
        "answer_relevancy": _interval([f.answer_relevancy for f in judged if f.answer_relevancy is not None], seed),
        "n_items_with_gold": len(with_gold),
        "gold_available": gold_available,
        "context_precision": _interval([f.context_precision for f in with_gold], seed),
        "mrr": _interval([f.reciprocal_rank for f in with_gold], seed),
    }
