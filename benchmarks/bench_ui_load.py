"""Load test of the UI on loopback: N concurrent users, each asking a few questions on the Chat page.

    python benchmarks/bench_ui_load.py --clients 20 --questions 3 --max-tokens 16

Starts a real Ollama server (built by ``make setup``) with the bundled Gemma 3 270M as the chat
model, serves the app exactly as ``als-lm ui`` does (same queue and concurrency settings) on
127.0.0.1, then every client opens its own ``gradio_client`` session and asks its questions one
after the other through the ``/chat`` endpoint, all clients at once. A request counts as an error
when it raises, when the page reports a problem (a status starting with ⚠) or when the answer is
empty. Latency is the wall time of one request, queueing included.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTIONS = [
    "What is ALS?",
    "How does riluzole work in ALS?",
    "Which gene mutation is most common in familial ALS?",
    "What is the role of TDP-43 in ALS?",
    "Is edaravone approved for ALS?",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def client_session(url: str, n: int, offset: int, max_tokens: int, start: threading.Barrier,
                   results: list[dict]) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    start.wait()
    for i in range(n):
        question = QUESTIONS[(offset + i) % len(QUESTIONS)]
        t0 = time.perf_counter()
        try:
            history, _, status = client.predict(question, "scratch", 0.7, 40, 0.9, max_tokens, [], api_name="/chat")
            answer = history[-1]["content"] if history else ""
            error = status if status.startswith("⚠") else ("" if str(answer).strip() else "empty answer")
        except Exception as err:  # noqa: BLE001 - any failure of a request is what the test counts
            error = f"{type(err).__name__}: {err}"
        results.append({"latency_s": time.perf_counter() - t0, "error": error})


@click.command()
@click.option("--clients", default=20, show_default=True, help="Concurrent users.")
@click.option("--questions", default=3, show_default=True, help="Questions per user, one after the other.")
@click.option("--max-tokens", default=16, show_default=True, help="Tokens generated per answer.")
@click.option("--ollama-parallel", default=4, show_default=True,
              help="OLLAMA_NUM_PARALLEL of the started server: generations Ollama batches together.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Also write the figures as JSON.")
def main(clients: int, questions: int, max_tokens: int, ollama_parallel: int, out: Path | None) -> None:
    from services.evaluator.rag import generate
    from services.evaluator.ui.app import launch
    from services.evaluator.ui.settings import UISettings
    from shared import servers
    from shared.settings import load
    from shared.store import LocalStore

    root = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    server = servers.ollama(root / "ollama")
    server.env["OLLAMA_NUM_PARALLEL"] = str(ollama_parallel)
    with server.start(timeout=120):
        model = generate.BUNDLED_GENERATOR
        client = generate.connect(server.base_url)
        generate.ensure_generator(client, model)
        generate.load(client, model)
        settings = load(UISettings, work_dir=root / "work", ollama_host=server.base_url,
                        eval={"scratch_model": model}, ui={"port": servers.free_port()})
        demo = launch(settings, LocalStore(root / "artifacts"), block=False)
        url = f"http://127.0.0.1:{settings.ui.port}/"
        results: list[dict] = []
        barrier = threading.Barrier(clients + 1)
        threads = [threading.Thread(target=client_session, args=(url, questions, i, max_tokens, barrier, results))
                   for i in range(clients)]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        demo.close()
    latencies = [r["latency_s"] for r in results]
    errors = [r["error"] for r in results if r["error"]]
    figures = {
        "clients": clients, "questions_per_client": questions, "requests": len(results), "errors": len(errors),
        "max_tokens": max_tokens, "ollama_num_parallel": ollama_parallel,
        "concurrency_limit": settings.ui.concurrency_limit, "queue_size": settings.ui.queue_size,
        "latency_p50_s": round(statistics.median(latencies), 2), "latency_p95_s": round(percentile(latencies, 0.95), 2),
        "latency_max_s": round(max(latencies), 2), "wall_s": round(wall, 1),
        "requests_per_s": round(len(results) / wall, 3), "cpus": os.cpu_count(),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(figures, indent=2))
    for e in sorted(set(errors))[:5]:
        print("error:", e, file=sys.stderr)
    if out:
        out.write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
