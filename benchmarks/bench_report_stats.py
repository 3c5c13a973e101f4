"""Time the report's statistics: every interval and paired comparison for S systems on N questions.

    python benchmarks/bench_report_stats.py --items 152 --systems 3

Synthetic scores over the bundled benchmark's first N items (accuracy drawn from 0, 1/4, ..., 1;
fabrication and hedging at random; seeded), run through the same functions the report stage calls
(``analysis.system_figures`` for every system and category, ``analysis.comparisons`` for every pair).
The reference, measured in the same run, is the same figures as bare means without intervals.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.evaluator.inputs import load_benchmark
from services.evaluator.report import analysis
from services.evaluator.score import summarize
from services.evaluator.settings import BENCHMARK
from shared.schemas.eval import BENCHMARK_CATEGORIES, SYSTEMS, FactMatch, ItemScore, ScoreFile


def synthetic(items, rng: random.Random) -> ScoreFile:
    scores = []
    for item in items:
        verdicts = [rng.choice(["supported", "absent", "absent", "contradicted"]) for _ in item.key_facts]
        facts = [FactMatch(fact=f.text, present=v == "supported", verdict=v) for f, v in zip(item.key_facts, verdicts)]
        present = [f.present for f in facts]
        scores.append(ItemScore(id=item.id, category=item.category, facts_present=present,
                                accuracy=sum(present) / len(present), facts=facts,
                                fabricated_entities=["Neurovaxine"] if rng.random() < 0.1 else [],
                                hedging={"hedged": rng.random() < 0.2, "refusal": False, "count": 0, "cues": []}))
    return ScoreFile(items=scores, summary=summarize(scores))


@click.command()
@click.option("--items", default=152, show_default=True, help="Questions per system.")
@click.option("--systems", default=3, show_default=True, help="Systems compared.")
def main(items: int, systems: int) -> None:
    chosen = load_benchmark(BENCHMARK)[:items]
    rng = random.Random(0)
    names = [*SYSTEMS, *(f"system{k}" for k in range(len(SYSTEMS), systems))][:systems]
    data = {n: analysis.SystemData(n, synthetic(chosen, rng), []) for n in names}
    categories = list(BENCHMARK_CATEGORIES)

    t0 = time.perf_counter()
    for d in data.values():
        for c in [None, *categories]:
            rows = [s for s in d.scores.items if c is None or s.category == c]
            [sum(analysis.item_figures(s)[k] for s in rows) / max(1, len(rows)) for k in analysis.FIGURES]
    t1 = time.perf_counter()
    figures = {n: analysis.system_figures(d, categories, 1337) for n, d in data.items()}
    t2 = time.perf_counter()
    comparisons = analysis.comparisons(data, categories, 1337)
    t3 = time.perf_counter()
    intervals = sum(len(f["figures"]) * (1 + len(f["by_category"])) for f in figures.values())
    print(f"reference: bare means, {systems} systems x {items} items       {1000 * (t1 - t0):8.1f} ms")
    print(f"intervals: {intervals} bootstrap intervals (10,000 resamples)    {t2 - t1:8.2f} s")
    print(f"paired:    {len(comparisons)} comparisons (bootstrap + McNemar)      {t3 - t2:8.2f} s")


if __name__ == "__main__":
    main()
