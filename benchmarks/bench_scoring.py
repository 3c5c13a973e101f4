"""Time the scorer on 1,000 responses: lexical rules alone, then with the MiniLM embedding fallback,
then with claim precision (issue 18), then with claim precision and RAG faithfulness.

    python benchmarks/bench_scoring.py --n 1000

The responses cycle over the bundled benchmark in four kinds, so every rule runs: the reference
answer (facts found lexically), the reference answer with its first sentence negated, an off-topic
sentence (every fact missing: the embedding fallback's worst case), and a response with invented
names (fabrication). The fabrication lexicon is built from the bundled sample corpus; its build
time is reported apart, as the score stage pays it once per run; so is the claim scorer's corpus
index. For the last row every response carries five retrieved chunks (sample documents, cited as
[1]), so faithfulness, citations, relevancy and gold evidence run too.
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
from services.evaluator.score import build, build_claims, score_responses
from services.evaluator.settings import BENCHMARK, EvalConfig
from shared.schemas.eval import Response, RetrievedChunk

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
    docs = [json.loads(line) for p in sorted((ROOT / "services/scraper/sample").glob("*.jsonl"))
            for line in p.read_text().splitlines()]
    corpus = [d["text"] for d in docs]
    pairs = responses(n)
    rag = [(item, r.model_copy(update={
        "response": r.response + " [1]",
        "retrieved": [RetrievedChunk(chunk_id=f"{d['id']}#0", source_id=d["id"], title=d["title"],
                                     text=d["text"][:2000], distance=0.5) for d in docs[k % 50:k % 50 + 5]]}))
           for k, (item, r) in enumerate(pairs)]
    rows = [("lexical only", EvalConfig(use_embeddings=False), False, pairs),
            ("with embeddings", EvalConfig(), False, pairs), ("with claims", EvalConfig(), True, pairs),
            ("claims + RAG", EvalConfig(), True, rag)]
    for label, config, with_claims, cases in rows:
        t0 = time.perf_counter()
        scorer, lexicon = build(config, corpus)
        if scorer.embedder is not None:
            scorer.embedder.encode(["warm-up"])  # model load, reported apart
        claims = build_claims(config, scorer, [(d["id"], d["text"]) for d in docs]) if with_claims else None
        t1 = time.perf_counter()
        scores = score_responses(cases, scorer, lexicon, claims)
        t2 = time.perf_counter()
        methods = scores.summary["facts_by_method"]
        claimed = scores.summary.get("claims")
        extra = f"  claims {claimed['n_claims']} {claimed['claims_by_verdict']}" if claimed else ""
        print(f"{label:16s} setup {t1 - t0:6.2f} s  scoring {n} responses {t2 - t1:7.2f} s  "
              f"({n / (t2 - t1):7.1f} responses/s)  accuracy {scores.summary['accuracy']:.3f}  methods {methods}"
              f"{extra}")


if __name__ == "__main__":
    main()
