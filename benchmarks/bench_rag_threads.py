"""RAG answer time by Ollama thread count, on a copy of an experiment's store: the same questions
asked with each ``num_thread``, side by side in one run, and whether the answers are identical.

The CPU experiment asks the RAG baseline with one thread (the other core trains); this measures
what a second thread would buy once training is done, and whether the thread count changes the
(greedy) answers.

    .venv/bin/python benchmarks/bench_rag_threads.py --root volumes/experiment --limit 10
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


@click.command()
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True,
              help="An experiment's folder (artifacts/ with a rag-index run, ollama/ with the generator).")
@click.option("--limit", type=int, default=10, show_default=True, help="Questions per thread count.")
@click.option("--threads", "thread_counts", multiple=True, type=int, default=(1, 2), show_default=True)
@click.option("--max-tokens", type=int, default=96, show_default=True)
def main(root: Path, limit: int, thread_counts: tuple[int, ...], max_tokens: int) -> None:
    from als_lm.stack import LocalStack
    from shared import runs
    from shared.schemas.eval import Response
    from shared.store import LocalStore

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp)  # the runs this publishes stay out of the experiment's store
        shutil.copytree(root / "artifacts", copy / "artifacts")
        shutil.copytree(root / "ollama", copy / "ollama")
        env = {"ALS_EVAL__MAX_TOKENS": str(max_tokens), "OMP_NUM_THREADS": "1"}
        figures, answers = [], {}
        with LocalStack(copy, "local", env=env) as stack:
            for threads in thread_counts:
                load = Path("/proc/loadavg").read_text().split()[:3]
                t0 = time.monotonic()
                subprocess.run([sys.executable, "-m", "als_lm", "eval", "run", "--system", "rag", "--limit", str(limit),
                                "--force"], env={**stack.env, "ALS_EVAL__NUM_THREAD": str(threads)}, check=True,
                               capture_output=True)
                wall = time.monotonic() - t0
                store = LocalStore(copy / "artifacts")
                run = runs.latest(store, "eval-rag")
                lines = store.get_bytes(run.output("responses.jsonl").key).decode().splitlines()
                answers[threads] = [Response.model_validate_json(line).response for line in lines]
                figures.append({"num_thread": threads, "questions": limit, "wall_s": round(wall, 1),
                                "latency_p50_s": run.metrics["latency_p50_s"], "load_before": load})
    reference = answers[thread_counts[0]]
    for row in figures:
        row["answers_identical_to_first"] = sum(a == b for a, b in zip(answers[row["num_thread"]], reference))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
