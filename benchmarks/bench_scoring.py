"""Time the scorer on 1,000 responses: lexical rules alone, then with the MiniLM embedding fallback.

    python benchmarks/bench_scoring.py --n 1000

The responses cycle over the bundled benchmark in four kinds, so every rule runs: the reference
answer (facts found lexically), the reference answer with its first sentence negated, an off-topic
sentence (every fact missing: the embedding fallback's worst case), and a response with invented
names (fabrication). The fabrication lexicon is built from the bundled sample corpus; its build
time is reported apart, as the score stage pays it once per run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.evaluator.inputs import load_benchmark
from services.evaluator.score import build, score_responses
from services.evaluator.settings import BENCHMARK, EvalConfig
from shared.schemas.eval import Response

OFF_TOPIC = "Physical therapy and stretching can help people keep their range of motion for longer."
INVENTED = "Neurovaxine, tested in NCT09481273 with the ALSN7 gene, reverses the disease."


def responses(n: int):
    items = load_benchmark(BENCHMARK)
    pairs = []
    for k in range(n):
        item = items[k % len(items)]
        text = [item.reference_answer, "It is not true that " + item.reference_answer[0].lower()
                + item.reference_answer[1:], OFF_TOPIC, INVENTED][(k // len(items)) % 4]
        pairs.append((item, Response(id=item.id, response=text)))
    return pairs


@click.command()
@click.option("--n", default=1000, show_default=True, help="Responses to score.")
def main(n: int) -> None:
    corpus = [json.loads(line)["text"] for p in sorted((ROOT / "services/scraper/sample").glob("*.jsonl"))
              for line in p.read_text().splitlines()]
    pairs = responses(n)
    for label, config in [("lexical only", EvalConfig(use_embeddings=False)), ("with embeddings", EvalConfig())]:
        t0 = time.perf_counter()
        scorer, lexicon = build(config, corpus)
        if scorer.embedder is not None:
            scorer.embedder.encode(["warm-up"])  # model load, reported apart
        t1 = time.perf_counter()
        scores = score_responses(pairs, scorer, lexicon)
        t2 = time.perf_counter()
        methods = scores.summary["facts_by_method"]
        print(f"{label:16s} setup {t1 - t0:6.2f} s  scoring {n} responses {t2 - t1:7.2f} s  "
              f"({n / (t2 - t1):7.1f} responses/s)  accuracy {scores.summary['accuracy']:.3f}  methods {methods}")


if __name__ == "__main__":
    main()
