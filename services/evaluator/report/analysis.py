"""Every number of the comparison report, computed from stored artifacts only (design §8.3, §9.4)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from services.evaluator.leakage import leakage, longest_overlaps
from services.evaluator.score import corpus_documents
from services.evaluator.scoring.facts import FactScorer
from services.evaluator.settings import EvalConfig
from services.evaluator.taxonomy import MATRIX_ROWS, matrix_row, proxy_label
from shared.schemas.eval import BenchmarkItem, Response, Review, ScoreFile


@dataclass
class SystemData:
    name: str
    scores: ScoreFile
    responses: list[Response]
    reviews: list[Review] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)  # stage -> run


def failure_matrix(system: SystemData) -> dict:
    """Shares of the §8.3 matrix rows: from manual reviews when there are any, else automatic proxies."""
    if system.reviews:
        labels = [(r.correctness, r.failure_mode) for r in system.reviews]
        source = f"manual reviews ({len(labels)})"
    else:
        labels = [proxy_label(s) for s in system.scores.items]
        source = f"automatic proxies ({len(labels)} items)"
    rows = Counter(matrix_row(c, m) for c, m in labels)
    n = len(labels)
    return {
        "source": source,
        "n": n,
        "shares": {row: rows.get(row, 0) / n for row in MATRIX_ROWS},
        "refusal": sum(c == "refusal" for c, _ in labels) / n,
        "severity": dict(Counter(r.severity for r in system.reviews if r.severity)),
    }


def wins(scratch: SystemData, rag: SystemData) -> dict:
    a = {s.id: s.accuracy for s in scratch.scores.items}
    b = {s.id: s.accuracy for s in rag.scores.items}
    common = sorted(a.keys() & b.keys())
    rag_wins = sorted((i for i in common if b[i] > a[i]), key=lambda i: a[i] - b[i])
    scratch_wins = sorted((i for i in common if a[i] > b[i]), key=lambda i: b[i] - a[i])
    return {
        "common": len(common),
        "rag_wins": [(i, a[i], b[i]) for i in rag_wins],
        "scratch_wins": [(i, a[i], b[i]) for i in scratch_wins],
        "ties": len(common) - len(rag_wins) - len(scratch_wins),
    }


def retrieval(rag: SystemData, items: dict[str, BenchmarkItem], scorer: FactScorer) -> dict | None:
    """Fact recall@k: the share of key facts the retrieved chunks state (same matcher, no polarity checks)."""
    with_chunks = [r for r in rag.responses if r.retrieved is not None]
    if not with_chunks:
        return None
    answer = {s.id: s for s in rag.scores.items}
    rows, facts_total, facts_found, missed_total = [], 0, 0, 0
    for response in with_chunks:
        item = items[response.id]
        context = "\n".join(c.text for c in response.retrieved)
        found = [m.present for m in scorer.judge(item.question, item.key_facts, context, check=False)]
        in_answer = answer[response.id].facts_present if response.id in answer else [False] * len(found)
        missed = [f for f, ctx, ans in zip(item.fact_texts, found, in_answer) if ctx and not ans]
        facts_total += len(found)
        facts_found += sum(found)
        missed_total += len(missed)
        rows.append({"id": response.id, "recall": sum(found) / len(found), "missed": missed,
                     "k": len(response.retrieved)})
    return {
        "fact_recall": facts_found / facts_total,
        "k": max(r["k"] for r in rows),
        "items": rows,
        "items_all_facts": sum(r["recall"] == 1.0 for r in rows),
        "facts_retrieved_but_missed": missed_total,
        "items_retrieved_but_missed": [r for r in rows if r["missed"]],
    }


def hedging_vs_accuracy(system: SystemData) -> dict:
    hedged = [s.accuracy for s in system.scores.items if s.hedging["hedged"]]
    confident = [s.accuracy for s in system.scores.items if not s.hedging["hedged"]]
    mean = lambda v: sum(v) / len(v) if v else None
    return {"hedged_n": len(hedged), "hedged_accuracy": mean(hedged),
            "confident_n": len(confident), "confident_accuracy": mean(confident)}


def contamination(items: list[BenchmarkItem], scratch: SystemData | None, corpus: Path, config: EvalConfig) -> dict:
    leak = leakage(items, corpus_documents(corpus), config.leakage_ngram, config.leakage_threshold)
    out = {
        "ngram": config.leakage_ngram,
        "threshold": config.leakage_threshold,
        "items": leak,
        "leaked": [row["id"] for row in leak if row["leaked"]],
        "mean_question_overlap": sum(r["question_overlap"] for r in leak) / len(leak),
        "mean_answer_overlap": sum(r["answer_overlap"] for r in leak) / len(leak),
    }
    if scratch is not None:
        answers = {r.id: r.response for r in scratch.responses}
        overlaps = longest_overlaps(answers, corpus_documents(corpus))
        lengths = sorted((v["words"] for v in overlaps.values()), reverse=True)
        out["memorisation"] = {
            "per_answer": overlaps,
            "median_words": lengths[len(lengths) // 2] if lengths else 0,
            "max_words": lengths[0] if lengths else 0,
            "verbatim_answers": sum(v["verbatim"] for v in overlaps.values()),
            "top": sorted(overlaps.items(), key=lambda kv: -kv[1]["words"])[:5],
        }
    return out
