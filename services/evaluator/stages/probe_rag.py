"""The ``probe-rag`` stage (``als-lm probe rag``): the probe items scored on the RAG generator through llama.cpp,
closed-book (the stem alone) and with the chunks the ``rag-index`` run retrieves for the stem (docs/probe.md).

``ALS_PROBE__RAG_ITEMS`` scores a seeded sample stratified by form and exposure bucket instead of every item
(the CPU profile: RAG reads thousands of context tokens per item); both systems score the same sample, and the
report pairs them with the other systems on the items they share."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from services.evaluator.probe.backends import rag
from services.evaluator.probe.sample import stratified
from services.evaluator.probe.score import score_item, summarise
from services.evaluator.rag import index
from services.evaluator.rag.pipeline import latest_index
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.stages.probe import probe_sha256, read_items, resolve
from shared import runs, stages
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.probe import ProbeSystem
from shared.store import ArtifactStore, sha256_file

log = logging.getLogger(__name__)
SYSTEMS = ("closed_book", "rag")


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    config = settings.probe
    items_run = resolve(store, config.items_run, "probe-items")
    index_run = latest_index(store)
    generator = rag.generator_gguf(settings)
    inputs = [*runs.inputs_from(items_run, ["items.jsonl"]),
              *runs.inputs_from(index_run, ["chunks.jsonl", *(o.name for o in index_run.outputs_under("chroma/"))])]

    def body(writer: RunWriter, scratch: Path) -> None:
        every = read_items(runs.fetch(store, items_run.output("items.jsonl"), scratch / "items.jsonl"))
        items = stratified(every, config.rag_items, settings.seed)
        closed = rag.closed_book(settings)
        with_chunks = rag.with_retrieval(store, settings, closed)
        results = []
        for backend in (closed, with_chunks):
            results += [score_item(backend, item, greedy_tokens=config.greedy_tokens) for item in items]
            log.info("probe-rag: %s scored on %d items", backend.name, len(items))
        retrieval = []
        for item in items:
            chunks = index.query(with_chunks.collection, with_chunks.embedder, item.stem, with_chunks.top_k)
            retrieval.append({"item": item.id, "context_tokens": len(closed.tokenize(with_chunks.context(item.stem))),
                              "chunks": [{"source_id": c.source_id, "distance": c.distance} for c in chunks],
                              "own_source_retrieved": any(c.source_id == item.source for c in chunks)})
        closed.llm.close()
        summary = summarise(items, results, seed=settings.seed, baselines=("closed_book",))
        writer.put_bytes("results.jsonl", "".join(r.model_dump_json() + "\n" for r in results).encode())
        writer.put_json("systems.json", [ProbeSystem(name=name, kind=name).model_dump() for name in SYSTEMS])
        writer.put_json("summary.json", summary)
        writer.put_bytes("retrieval.jsonl", "".join(json.dumps(r) + "\n" for r in retrieval).encode())
        tokens = sorted(r["context_tokens"] for r in retrieval)
        writer.metrics.update(
            items=len(items), of_items=len(every), items_run=items_run.run, index_run=index_run.run,
            generator=settings.rag.generator_model,
            accuracy={name: by["all"]["accuracy"]["estimate"] for name, by in summary["systems"].items()},
            median_context_tokens=tokens[len(tokens) // 2],
            own_source_retrieved=sum(r["own_source_retrieved"] for r in retrieval) / len(retrieval),
        )

    fingerprinted = stages.fingerprint_settings("probe-rag", settings, probe_sha256=probe_sha256(),
                                                generator_sha256=sha256_file(generator))
    return runs.run_stage(store, "probe-rag", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)

