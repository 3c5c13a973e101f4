"""``als-lm eval run``: ask one system every benchmark question and publish ``eval-<system>``.

``eval-scratch`` asks the from-scratch model served by Ollama (the tag comes from the latest ``serve``
run); ``eval-rag`` asks the RAG baseline and also records which chunks it retrieved and whether they
contained each key fact (``retrieval.json``, fact recall@k). Generation is greedy with a fixed seed,
and the model's digest is part of the run's fingerprint, so a rerun with the same model is skipped
and a new model is asked again.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from services.evaluator.inputs import load_benchmark
from services.evaluator.rag import generate
from services.evaluator.rag.pipeline import open_rag
from services.evaluator.scoring.normalize import normalize
from services.evaluator.settings import EvaluatorSettings
from shared import log as shared_log
from shared import runs, stages
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.eval import BenchmarkItem, Response, RetrievedChunk
from shared.store import ArtifactStore, sha256_file

log = logging.getLogger(__name__)

# A system answers a question with (response, retrieved chunks or None, latency in seconds).
Answer = Callable[[str], tuple[str, list[RetrievedChunk] | None, float]]


def select(items: list[BenchmarkItem], limit: int | None) -> list[BenchmarkItem]:
    """The first ``limit`` questions taken round-robin across categories, so a quick run sees all of them."""
    if limit is None or limit >= len(items):
        return items
    queues: dict[str, list[BenchmarkItem]] = defaultdict(list)
    for item in items:
        queues[item.category].append(item)
    chosen: list[BenchmarkItem] = []
    while len(chosen) < limit:
        for queue in queues.values():
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def _plain(text: str) -> str:
    return " " + re.sub(r"[^\w]+", " ", normalize(text)).strip() + " "


def facts_in_context(facts: list[str], chunks: list[RetrievedChunk]) -> list[bool]:
    """Whether each key fact occurs, normalised, in the retrieved chunks (for fact recall@k)."""
    context = "".join(_plain(c.text) for c in chunks)
    return [_plain(f) in context for f in facts]


def scratch_model(store: ArtifactStore, settings: EvaluatorSettings) -> tuple[str, list[InputRef]]:
    """The served from-scratch model's tag and the ``serve`` run it comes from."""
    if settings.eval.scratch_model:
        return settings.eval.scratch_model, []
    try:
        serve = runs.latest(store, "serve")
    except RunNotFound:
        raise RunNotFound(
            f"no published serve run in {store.description}; run `als-lm export ollama` first "
            "(or name a served model with ALS_EVAL__SCRATCH_MODEL)"
        ) from None
    tag = next((t for t in serve.metrics.get("tags", []) if t.endswith(":latest")), None)
    if tag is None:
        raise ValueError(f"serve run {serve.run} records no `latest` tag in its metrics: {serve.metrics.get('tags')}")
    return tag, runs.inputs_from(serve, ["report.json"])


def run_eval(store: ArtifactStore, settings: EvaluatorSettings, system: str, limit: int | None = None,
             force: bool = False) -> tuple[Manifest, bool]:
    cfg = settings.eval
    items = select(load_benchmark(cfg.benchmark), limit)
    benchmark = InputRef(key=f"bundled/{Path(cfg.benchmark).name}", sha256=sha256_file(cfg.benchmark),
                         run="bundled")
    opts = generate.options(settings.seed, cfg.max_tokens, cfg.num_thread)
    if system == "scratch":
        model, inputs = scratch_model(store, settings)
        client = generate.connect(settings.ollama_host)
        digest = generate.require(client, model, "create it with `als-lm export ollama`")
        generate.load(client, model)

        def answer(question: str) -> tuple[str, None, float]:
            text, seconds = generate.answer(client, model, question, opts)
            return text, None, seconds

    elif system == "rag":
        rag = open_rag(store, settings)
        model, digest, answer = rag.model, rag.model_digest, rag.ask
        inputs = runs.inputs_from(runs.resolve(store, rag.index_run))
        opts = rag.options
    else:
        raise ValueError(f"unknown system {system!r}; choose scratch or rag")
    fingerprinted = stages.fingerprint_settings(f"eval-{system}", settings, system=system, model=model,
                                                model_digest=digest, options=opts, limit=limit)

    def body(writer: RunWriter, scratch: Path) -> None:
        responses = ask_all(items, answer, system, model)
        path = scratch / "responses.jsonl"
        path.write_text("".join(r.model_dump_json() + "\n" for r in responses))
        writer.put_file("responses.jsonl", path)
        latencies = sorted(r.latency_s for r in responses)
        writer.metrics.update(questions=len(responses), model=model,
                              latency_p50_s=round(latencies[len(latencies) // 2], 3),
                              latency_mean_s=round(sum(latencies) / len(latencies), 3))
        if system == "rag":
            retrieval = retrieval_quality(items, responses, settings.rag.top_k)
            writer.put_json("retrieval.json", retrieval)
            writer.metrics["fact_recall_at_k"] = retrieval["summary"]["fact_recall"]

    return runs.run_stage(store, f"eval-{system}", fingerprinted, [benchmark, *inputs], body,
                          work_dir=settings.work_dir, force=force)


def ask_all(items: list[BenchmarkItem], answer: Answer, system: str, model: str) -> list[Response]:
    responses = []
    with shared_log.progress() as bar:
        task = bar.add_task(f"asking {system}", total=len(items))
        for item in items:
            text, retrieved, seconds = answer(item.question)
            responses.append(Response(id=item.id, response=text, latency_s=round(seconds, 4), system=system,
                                      model=model, retrieved=retrieved))
            bar.advance(task)
    return responses


def retrieval_quality(items: list[BenchmarkItem], responses: list[Response], k: int) -> dict:
    """Per question: which key facts the top-k chunks contained; overall: fact recall@k."""
    rows = []
    for item, response in zip(items, responses):
        found = facts_in_context(item.fact_texts, response.retrieved or [])
        rows.append({"id": item.id, "category": item.category, "facts_in_context": found,
                     "recall": sum(found) / len(found), "chunk_ids": [c.chunk_id for c in response.retrieved or []]})
    facts = [f for row in rows for f in row["facts_in_context"]]
    return {
        "k": k,
        "items": rows,
        "summary": {
            "fact_recall": round(sum(facts) / len(facts), 4),
            "mean_item_recall": round(sum(r["recall"] for r in rows) / len(rows), 4),
            "items_with_all_facts": sum(all(r["facts_in_context"]) for r in rows),
            "items": len(rows),
        },
    }
