"""Every number of the comparison report, computed from stored artifacts only (docs/evaluation.md)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from services.evaluator import stats
from services.evaluator.leakage import VERBATIM_WORDS, leakage, longest_overlaps
from services.evaluator.score import corpus_documents, is_correct
from services.evaluator.scoring.facts import FactScorer
from services.evaluator.settings import EvalConfig
from services.evaluator.taxonomy import MATRIX_ROWS, matrix_row, proxy_label
from shared.schemas.eval import BenchmarkItem, ItemScore, Response, Review, ScoreFile
from shared.schemas.experiment import EXPOSURE_BUCKETS, CheckpointResult, ExperimentResult

CORRECT = ("correct: every counted key fact supported, no key fact contradicted, and the yes/no right where the "
           "question has one")
"""The one definition of a correct item (services/evaluator/score.py ``is_correct``), as the report states it."""
FIGURES = {
    "accuracy": "graded accuracy",
    "correct": "correct (strict)",
    "fabrication": "responses with fabricated names",
    "hedged": "hedged responses",
    "refusal": "refusals",
}
"""Per-item figures whose mean over items is a system's rate; each is reported with its interval."""


@dataclass
class SystemData:
    name: str
    scores: ScoreFile
    responses: list[Response]
    reviews: list[Review] = field(default_factory=list)
    runs: dict[str, str] = field(default_factory=dict)  # stage -> run


def item_figures(score: ItemScore) -> dict[str, float]:
    """The per-item value of each of ``FIGURES``."""
    return {
        "accuracy": score.accuracy,
        "correct": float(is_correct(score)),
        "fabrication": float(bool(score.fabricated_entities)),
        "hedged": float(bool(score.hedging.get("hedged"))),
        "refusal": float(bool(score.hedging.get("refusal"))),
    }


def figures(scores: list[ItemScore], seed: int) -> dict[str, stats.Interval]:
    """Every rate of a set of items with its bootstrap interval and n, plus the pooled fact shares."""
    values = [item_figures(s) for s in scores]
    out = {name: stats.bootstrap_mean([v[name] for v in values], seed=seed) for name in FIGURES}
    counted = [[f for f in s.facts if f.counted] for s in scores]
    asked = [len(fs) for fs in counted]
    out["facts_supported"] = stats.bootstrap_ratio([sum(f.verdict == "supported" for f in fs) for fs in counted],
                                                   asked, seed=seed)
    out["facts_contradicted"] = stats.bootstrap_ratio(
        [sum(f.verdict == "contradicted" for f in fs) for fs in counted], asked, seed=seed)
    return out


def system_figures(system: SystemData, categories: list[str], seed: int) -> dict:
    """Overall and per-category figures; a category under ``MIN_COMPARE_N`` items is marked too small."""
    by_category = {}
    for category in categories:
        chosen = [s for s in system.scores.items if s.category == category]
        by_category[category] = {"figures": figures(chosen, seed), "n": len(chosen),
                                 "too_small": len(chosen) < stats.MIN_COMPARE_N}
    return {"n": len(system.scores.items), "figures": figures(system.scores.items, seed), "by_category": by_category}


def comparisons(systems: dict[str, SystemData], categories: list[str], seed: int) -> list[dict]:
    """Every pair of systems, overall and per category, paired on the items both answered: the graded
    accuracy difference with its interval, McNemar on strict correctness."""
    out = []
    names = list(systems)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            for category in [None, *categories]:
                (xa, oka), (xb, okb) = (_accuracies(systems[name], category) for name in (a, b))
                if xa.keys() & xb.keys():
                    out.append({"category": category, **stats.compare(a, xa, oka, b, xb, okb, seed=seed).model_dump()})
    return out


def _accuracies(system: SystemData, category: str | None) -> tuple[dict[str, float], dict[str, bool]]:
    chosen = [s for s in system.scores.items if category is None or s.category == category]
    return {s.id: s.accuracy for s in chosen}, {s.id: is_correct(s) for s in chosen}


def hallucinated(score: ItemScore) -> bool:
    """The answer makes at least one claim that is contradicted or unverifiable."""
    return any(c.verdict != "supported" for c in score.claims or [])


def claim_figures(system: SystemData, seed: int) -> dict | None:
    """Claim hallucination over all answers: pooled over claims (contradicted or unverifiable claims / all
    claims, items resampled whole) and per answer, each answer in exactly one outcome: no claim (a
    non-answer or refusal: its own outcome, never dropped), every claim supported, or at least one
    claim hallucinated. None when the score run judged no claims (an older run)."""
    scored = [s for s in system.scores.items if s.claims is not None]
    if not scored:
        return None
    claims = [len(s.claims) for s in scored]

    def pooled(verdicts: tuple[str, ...]) -> stats.Interval:
        return stats.bootstrap_ratio([sum(c.verdict in verdicts for c in s.claims) for s in scored], claims, seed=seed)

    outcomes = {
        "no_claim": [float(not s.claims) for s in scored],
        "all_supported": [float(bool(s.claims) and not hallucinated(s)) for s in scored],
        "hallucinated": [float(hallucinated(s)) for s in scored],
    }
    return {
        "answers": len(scored), "claims": sum(claims),
        "pooled": {"hallucinated": pooled(("contradicted", "unverifiable")), "contradicted": pooled(("contradicted",)),
                   "unverifiable": pooled(("unverifiable",)), "supported": pooled(("supported",))},
        "per_answer": {name: stats.bootstrap_mean(v, seed=seed) for name, v in outcomes.items()},
    }


def hallucination_comparisons(systems: dict[str, SystemData], seed: int) -> list[dict]:
    """Every pair of claim-scored systems on the items both answered: the difference in the share of answers
    with a hallucinated claim, and McNemar on that outcome."""
    scored = {n: {s.id: hallucinated(s) for s in d.scores.items if s.claims is not None} for n, d in systems.items()}
    names = [n for n in systems if scored[n]]
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            xa, xb = ({k: float(v) for k, v in scored[n].items()} for n in (a, b))
            if xa.keys() & xb.keys():
                out.append(stats.compare(a, xa, scored[a], b, xb, scored[b], seed=seed).model_dump())
    return out


def adjust_family(*families: list[dict]) -> int:
    """Holm over every McNemar test the report prints (comparisons too small to compare print none), set
    in place as ``mcnemar.p_holm``; returns the family's size."""
    tests = [c["mcnemar"] for family in families for c in family if not c["too_small"]]
    for test, adjusted in zip(tests, stats.holm([t["p_value"] for t in tests])):
        test["p_holm"] = adjusted
    return len(tests)


def failure_matrix(system: SystemData, questions: dict[str, str] | None = None, seed: int = stats.SEED) -> dict:
    """Shares of the §8.3 matrix rows: from manual reviews when there are any, else automatic proxies.

    Refusals and non-answers are outside the matrix and get their own shares.
    """
    if system.reviews:
        labels = [(r.correctness, r.failure_mode) for r in system.reviews]
        source = f"manual reviews ({len(labels)})"
    else:
        answers = {r.id: r.response for r in system.responses}
        questions = questions or {}
        labels = [proxy_label(s, answers.get(s.id), questions.get(s.id, "")) for s in system.scores.items]
        source = f"automatic proxies ({len(labels)} items)"
    rows = [matrix_row(c, m) for c, m in labels]
    n = len(labels)
    indicators = {row: [float(r == row) for r in rows] for row in MATRIX_ROWS}
    indicators["refusal"] = [float(c == "refusal") for c, _ in labels]
    indicators["non_answer"] = [float(m == "non_answer") for _, m in labels]
    return {
        "source": source,
        "n": n,
        "shares": {row: rows.count(row) / n for row in MATRIX_ROWS},
        "refusal": sum(indicators["refusal"]) / n,
        "non_answer": sum(indicators["non_answer"]) / n,
        "intervals": {name: stats.bootstrap_mean(v, seed=seed) for name, v in indicators.items()},
        "severity": dict(Counter(r.severity for r in system.reviews if r.severity)),
    }


def per_question(items: list[BenchmarkItem], systems: dict[str, SystemData]) -> list[dict]:
    """Each question with every system's answer and what became of each key fact.

    A fact's verdict is the scorer's (supported, contradicted, absent); a fact found but rejected
    (negated, another subject) without being contradicted is listed as missing with the reason.
    """
    rows = []
    for item in items:
        answers = []
        for name, system in systems.items():
            score = next((s for s in system.scores.items if s.id == item.id), None)
            if score is None:
                continue
            response = next((r.response for r in system.responses if r.id == item.id), "")
            supported = [f.fact for f in score.facts if f.verdict == "supported"]
            contradicted = [f.fact for f in score.facts if f.verdict == "contradicted"]
            missing = [f.fact + (f" ({f.rejected})" if f.rejected else "") for f in score.facts
                       if f.verdict == "absent"]
            answers.append({"system": name, "answer": response, "accuracy": score.accuracy,
                            "supported": supported, "contradicted": contradicted, "missing": missing,
                            "fabricated": list(score.fabricated_entities)})
        if answers:
            rows.append({"id": item.id, "question": item.question, "answers": answers})
    return rows


def wins(a: SystemData, b: SystemData) -> dict:
    """Questions where one system's accuracy beats the other's, largest differences first."""
    xa = {s.id: s.accuracy for s in a.scores.items}
    xb = {s.id: s.accuracy for s in b.scores.items}
    common = sorted(xa.keys() & xb.keys())
    b_wins = sorted((i for i in common if xb[i] > xa[i]), key=lambda i: xa[i] - xb[i])
    a_wins = sorted((i for i in common if xa[i] > xb[i]), key=lambda i: xb[i] - xa[i])
    return {
        "common": len(common),
        "a_wins": [(i, xa[i], xb[i]) for i in a_wins],
        "b_wins": [(i, xa[i], xb[i]) for i in b_wins],
        "ties": len(common) - len(a_wins) - len(b_wins),
    }


def retrieval(rag: SystemData, items: dict[str, BenchmarkItem], scorer: FactScorer, seed: int) -> dict | None:
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
                     "k": len(response.retrieved), "found": sum(found), "facts": len(found)})
    return {
        "fact_recall": facts_found / facts_total,
        "fact_recall_interval": stats.bootstrap_ratio([r["found"] for r in rows], [r["facts"] for r in rows],
                                                      seed=seed),
        "k": max(r["k"] for r in rows),
        "items": rows,
        "items_all_facts": sum(r["recall"] == 1.0 for r in rows),
        "facts_retrieved_but_missed": missed_total,
        "items_retrieved_but_missed": [r for r in rows if r["missed"]],
    }


def hedging_vs_accuracy(system: SystemData, seed: int) -> dict[str, stats.Interval]:
    """Accuracy of hedged and of confident responses, each with its interval."""
    return {
        "hedged": stats.bootstrap_mean([s.accuracy for s in system.scores.items if s.hedging["hedged"]], seed=seed),
        "confident": stats.bootstrap_mean([s.accuracy for s in system.scores.items if not s.hedging["hedged"]],
                                          seed=seed),
    }


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


@dataclass
class CheckpointData:
    checkpoint: CheckpointResult
    scores: ScoreFile
    responses: list[Response]
    base: ScoreFile | None = None
    """The same checkpoint's scores in the base condition (scratch_base), when it was asked so."""


def learning_curves(checkpoints: list[CheckpointData], corpus: Path, seed: int) -> list[dict]:
    """Per checkpoint: its rates and the memorised span of its answers, against tokens seen.

    The span is the contamination analysis's longest word sequence shared with the corpus, per answer
    (one corpus pass for all checkpoints). The chart uses its mean over answers, which has a bootstrap
    interval; the maximum, also listed, has none (a bootstrap of a maximum is not consistent).
    """
    answers = {(c.checkpoint.name, r.id): r.response for c in checkpoints for r in c.responses}
    overlaps = longest_overlaps(answers, corpus_documents(corpus))
    out = []
    for c in checkpoints:
        spans = [v["words"] for (name, _), v in overlaps.items() if name == c.checkpoint.name]
        f = figures(c.scores.items, seed)
        out.append({
            "name": c.checkpoint.name, "step": c.checkpoint.step, "tokens_seen": c.checkpoint.tokens_seen,
            "train_loss": c.checkpoint.train_loss, "val_loss": c.checkpoint.val_loss,
            "score_run": c.checkpoint.score_run, "accuracy": f["accuracy"], "correct": f["correct"],
            **({"base_accuracy": b["accuracy"], "base_correct": b["correct"]}
               if c.base and (b := figures(c.base.items, seed)) else {}),
            "fabrication": f["fabrication"],
            "hedged": f["hedged"], "memorised_span": stats.bootstrap_mean(spans, seed=seed),
            "max_span": max(spans, default=0), "verbatim_answers": sum(v >= VERBATIM_WORDS for v in spans),
        })
    return out


def exposure(result: ExperimentResult, systems: dict[str, SystemData], seed: int) -> dict:
    """Accuracy by how often the training split showed an item's key facts, per system (Kandpal et al. 2023)."""
    bucket = {e.id: e.bucket for e in result.exposure}
    return {
        "items": dict(Counter(bucket.values())),
        "accuracy": {name: {b: stats.bootstrap_mean([s.accuracy for s in system.scores.items
                                                     if bucket.get(s.id) == b], seed=seed)
                            for b in EXPOSURE_BUCKETS}
                     for name, system in systems.items()},
    }
