"""The RAG generator on the probe, through llama.cpp log-probabilities: closed-book (the stem alone) and with
the chunks the RAG pipeline retrieves for the stem.

The fair form: both read the stem exactly as the from-scratch model does and score the same continuations, and
the RAG form differs from closed-book by the retrieved text alone, laid out as ``eval-rag`` gives it to the
generator (numbered chunks with title and source, ``pipeline.context``), then a blank line and the stem.
The §9.3 instruction and its ``Question: ... Answer:`` frame are left out: they would make each candidate the
reply to a question instead of the continuation of a sentence, so the likelihoods would measure the frame as
much as the knowledge, and differently for the systems that never saw it. Retrieval is queried with the stem,
the only text the system is given; a memorisation stem is a training sentence's beginning, and finding its own
sentence in the index is what retrieval over the training corpus is for.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from chromadb.api.models.Collection import Collection

from services.evaluator.probe.backends.llama import LlamaBackend
from services.evaluator.rag import generate, index, pipeline
from services.evaluator.rag.embeddings import Embedder
from services.evaluator.settings import EvaluatorSettings
from shared.errors import InvalidInput
from shared.store import ArtifactStore


def generator_gguf(settings: EvaluatorSettings) -> Path:
    """The GGUF of the configured generator; the probe reads its log-probabilities, which Ollama does not give.
    The bundled Gemma's is assembled from its package; another generator's is the blob Ollama keeps it in (the
    ``FROM`` of its Modelfile), readable where the server runs on this machine (``als-lm experiment`` starts it)."""
    name = settings.rag.generator_model
    if generate.full_name(name) == generate.full_name(generate.BUNDLED_GENERATOR):
        return generate.bundled_gguf()
    client = generate.connect(settings.ollama_host)
    generate.require(client, name, f"pull it (`ollama pull {name}`)")
    found = re.search(r"^FROM (/\S+)$", client.show(name).modelfile or "", re.MULTILINE)
    if found is None or not Path(found.group(1)).is_file():
        raise InvalidInput(f"the probe reads the RAG generator's GGUF file, and Ollama at {settings.ollama_host} "
                           f"keeps {name!r} where this machine cannot read it ({found and found.group(1)}): run the "
                           "probe beside the server, or use the bundled "
                           f"{generate.BUNDLED_GENERATOR!r} (ALS_RAG__GENERATOR_MODEL)")
    return Path(found.group(1))


def closed_book(settings: EvaluatorSettings) -> LlamaBackend:
    """The generator given the stem alone."""
    return LlamaBackend.from_gguf(generator_gguf(settings), name="closed_book", n_ctx=settings.rag.num_ctx,
                                  threads=settings.eval.num_thread or os.cpu_count() or 1)


@dataclass
class RetrievalBackend:
    """The generator given the chunks retrieved for the stem, then the stem."""

    generator: LlamaBackend
    collection: Collection
    embedder: Embedder
    top_k: int
    index_run: str
    name: str = "rag"

    def context(self, stem: str) -> str:
        return f"{pipeline.context(index.query(self.collection, self.embedder, stem, self.top_k))}\n\n{stem}"

    def loglikelihoods(self, context: str, continuations: list[str]) -> list[float]:
        return self.generator.loglikelihoods(self.context(context), continuations)

    def greedy(self, context: str, max_tokens: int) -> str:
        return self.generator.greedy(self.context(context), max_tokens)


def with_retrieval(store: ArtifactStore, settings: EvaluatorSettings, generator: LlamaBackend) -> RetrievalBackend:
    """``generator`` reading what the latest ``rag-index`` run retrieves (its run is ``index_run``)."""
    manifest = pipeline.latest_index(store)
    embedder = Embedder(settings.rag.embedding_model)
    collection = pipeline.open_collection(store, settings, embedder, manifest)
    return RetrievalBackend(generator, collection, embedder, settings.rag.top_k, manifest.run)
