"""The ``rag-index`` stage: chunk the latest ``process`` run's documents, embed them and publish
``chunks.jsonl`` and ``chroma/``, the persistent Chroma directory readers fetch (docs/rag.md)."""

from __future__ import annotations

import time
from pathlib import Path

from services.evaluator.rag import index
from services.evaluator.rag.chunking import chunk_documents
from services.evaluator.rag.embeddings import Embedder
from services.evaluator.rag.pipeline import STAGE
from services.evaluator.settings import EvaluatorSettings
from shared import log as shared_log
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.corpus import CleanDocument
from shared.store import ArtifactStore

DOCUMENTS = ("train.jsonl", "val.jsonl")


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    cfg = settings.rag
    process = runs.latest(store, "process")
    inputs = runs.inputs_from(process, DOCUMENTS)

    def body(writer: RunWriter, scratch: Path) -> None:
        embedder = Embedder(cfg.embedding_model)
        docs = [
            CleanDocument.model_validate_json(line)
            for ref in inputs
            for line in runs.fetch(store, ref, scratch / Path(ref.key).name).read_text().splitlines()
            if line.strip()
        ]
        chunks = list(chunk_documents(docs, embedder.tokenizer, cfg.chunk_tokens, cfg.chunk_overlap))
        if not chunks:
            raise InvalidInput(f"process run {process.run} has no documents to index")
        collection = index.create(index.embedded(scratch / "chroma"), cfg.collection, embedder,
                                  f"{STAGE}/{writer.run_id}")
        start, batch = time.perf_counter(), 64
        with shared_log.progress() as bar:
            task = bar.add_task("embedding chunks", total=len(chunks))
            for i in range(0, len(chunks), batch):
                part = chunks[i:i + batch]
                index.add(collection, part, embedder.embed([c.text for c in part]))
                bar.advance(task, len(part))
        seconds = time.perf_counter() - start
        (scratch / "chunks.jsonl").write_text("".join(c.model_dump_json() + "\n" for c in chunks))
        writer.put_file("chunks.jsonl", scratch / "chunks.jsonl")
        writer.put_tree("chroma", scratch / "chroma")
        tokens = sum(c.n_tokens for c in chunks)
        writer.metrics.update(
            documents=len(docs), chunks=len(chunks), tokens=tokens, embedding_model=embedder.name,
            embedding_dim=embedder.dim, embed_index_s=round(seconds, 2),
            chunks_per_s=round(len(chunks) / seconds, 2), tokens_per_s=round(tokens / seconds, 1),
        )

    return runs.run_stage(store, STAGE, stages.fingerprint_settings(STAGE, settings), inputs, body,
                          work_dir=settings.work_dir, force=force)
