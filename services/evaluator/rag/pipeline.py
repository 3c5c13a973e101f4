"""The RAG answer (docs/rag.md): retrieve the top-k chunks of a ``rag-index`` run, prompt the generator.

Readers fetch the run's ``chroma/`` directory into the work dir (embedded mode) or load it into a
Chroma server (server mode) when the server's collection comes from another index run; the stage
that publishes it is services/evaluator/stages/rag_index.py.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import ollama
from chromadb.api.models.Collection import Collection

from services.evaluator.rag import generate, index
from services.evaluator.rag.embeddings import Embedder
from services.evaluator.settings import EvaluatorSettings
from shared import runs
from shared.manifest import Manifest
from shared.runs import RunNotFound
from shared.schemas.eval import RetrievedChunk
from shared.store import ArtifactStore

log = logging.getLogger(__name__)

STAGE = "rag-index"
COMPLETE = ".complete"

# Design §9.3, verbatim.
PROMPT = (
    "You are a helpful assistant answering questions about ALS (amyotrophic lateral sclerosis). Use ONLY the "
    "following context to answer the question. If the context does not contain enough information to answer, "
    "say so.\n\nContext:\n{retrieved_chunks}\n\nQuestion: {query}\n\nAnswer:"
)


def context(chunks: list[RetrievedChunk]) -> str:
    """The retrieved chunks as the generator reads them: numbered, each attributed to its title and source."""
    return "\n\n".join(
        f"[{i}] {c.title or 'untitled'} (source: {c.source_id})\n{c.text}" for i, c in enumerate(chunks, 1)
    )


def prompt(question: str, chunks: list[RetrievedChunk]) -> str:
    """The §9.3 prompt."""
    return PROMPT.format(retrieved_chunks=context(chunks), query=question)


def latest_index(store: ArtifactStore) -> Manifest:
    try:
        return runs.latest(store, STAGE)
    except RunNotFound:
        raise RunNotFound(f"no published {STAGE} run in {store.description}; run `als-lm rag index` first") from None


def local_copy(store: ArtifactStore, manifest: Manifest, work_dir: Path) -> Path:
    """The run's Chroma directory under the work dir, fetched (and verified) once per run."""
    dest = Path(work_dir) / STAGE / manifest.run_id / "chroma"
    if not (dest / COMPLETE).exists():
        for ref in manifest.outputs_under("chroma/"):
            runs.fetch(store, ref, dest / ref.name.split("/", 1)[1])
        (dest / COMPLETE).touch()
    return dest


def open_collection(store: ArtifactStore, settings: EvaluatorSettings, embedder: Embedder,
                    manifest: Manifest) -> Collection:
    """The collection to query: the fetched directory, or the server's copy of that same run."""
    cfg = settings.rag
    if cfg.chroma_mode == "server":
        client = index.server(cfg.chroma_url)
        if cfg.collection in {c.name for c in client.list_collections()}:
            served = client.get_collection(cfg.collection, embedding_function=None)
            index.check(served, embedder)  # another model's collection is refused, never replaced
            if served.metadata.get("index_run") == manifest.run:
                return served
    source = index.open_checked(index.embedded(local_copy(store, manifest, settings.work_dir)), cfg.collection,
                                embedder)
    if cfg.chroma_mode == "embedded":
        return source
    target = index.create(client, cfg.collection, embedder, manifest.run)
    log.info("loading %s into Chroma at %s (%d chunks)", manifest.run, cfg.chroma_url, source.count())
    index.copy(source, target)
    return target


@dataclass
class Rag:
    """Retrieve the top-k chunks for a question and let the generator answer from them."""

    collection: Collection
    embedder: Embedder
    client: ollama.Client
    model: str
    model_digest: str
    index_run: str
    top_k: int
    options: dict

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        return index.query(self.collection, self.embedder, question, self.top_k)

    def ask(self, question: str) -> tuple[str, list[RetrievedChunk], float]:
        """The answer, the chunks it was given and the latency of both steps together."""
        start = time.perf_counter()
        retrieved = self.retrieve(question)
        text, _ = generate.answer(self.client, self.model, prompt(question, retrieved), self.options)
        return text, retrieved, time.perf_counter() - start


def open_rag(store: ArtifactStore, settings: EvaluatorSettings) -> Rag:
    """Everything the RAG system needs, checked before the first question: index, embedder, generator."""
    cfg = settings.rag
    manifest = latest_index(store)
    client = generate.connect(settings.ollama_host)
    model_digest = generate.ensure_generator(client, cfg.generator_model)
    embedder = Embedder(cfg.embedding_model)
    collection = open_collection(store, settings, embedder, manifest)
    generate.load(client, cfg.generator_model)
    return Rag(collection, embedder, client, cfg.generator_model, model_digest, manifest.run, cfg.top_k,
               generate.options(settings.seed, settings.eval.max_tokens, settings.eval.num_thread, cfg.num_ctx))

