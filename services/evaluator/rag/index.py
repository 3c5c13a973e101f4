"""The Chroma collection of corpus chunks: build it, open it (checking its embedding model), query it.

Embedded mode opens a persistent directory (the demo; the directory is what ``rag-index`` publishes);
server mode talks to a ``chroma run`` server (the stack). The collection's metadata records the
embedding model and dimension, because vectors from another model would be compared silently and
retrieve nonsense.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import chromadb
import httpx
from chromadb.api import ClientAPI
from chromadb.api.models.Collection import Collection

from services.evaluator.rag.chunking import Chunk
from services.evaluator.rag.embeddings import Embedder
from shared.errors import InvalidInput
from shared.schemas.eval import RetrievedChunk
from shared.servers import ServerError


class IndexMismatch(InvalidInput):
    """A collection that cannot be queried with the configured embedding model."""


def _settings() -> chromadb.Settings:
    # A fresh object per client: chromadb writes the client's API choice into the Settings it is
    # given, so one shared object would turn a later embedded client into an HTTP one.
    return chromadb.Settings(anonymized_telemetry=False)


def embedded(path: Path) -> ClientAPI:
    return chromadb.PersistentClient(path=str(path), settings=_settings())


def server(url: str) -> ClientAPI:
    """A client of the Chroma server at ``url``; a clear error when nobody answers there."""
    parsed = urlparse(url)
    try:
        client = chromadb.HttpClient(host=parsed.hostname or "127.0.0.1", port=parsed.port or 8000,
                                     ssl=parsed.scheme == "https", settings=_settings())
        client.heartbeat()
    except (ValueError, httpx.HTTPError) as err:  # chromadb reports an absent server as a ValueError
        raise ServerError(
            f"cannot reach Chroma at {url} ({type(err).__name__}). Start it with "
            "`.venv/bin/chroma run --path volumes/chroma --port 8000` or `docker compose up -d chromadb`, "
            "or point ALS_RAG__CHROMA_URL at a running server"
        ) from None
    return client


def create(client: ClientAPI, name: str, embedder: Embedder, index_run: str) -> Collection:
    """A new, empty collection; an existing one of that name is replaced."""
    if name in {c.name for c in client.list_collections()}:
        client.delete_collection(name)
    return client.create_collection(
        name,
        configuration={"hnsw": {"space": "cosine"}},
        metadata={"embedding_model": embedder.name, "embedding_dim": embedder.dim, "index_run": index_run},
        embedding_function=None,
    )


def add(collection: Collection, chunks: list[Chunk], vectors) -> None:
    collection.add(ids=[c.id for c in chunks], embeddings=vectors, documents=[c.text for c in chunks],
                   metadatas=[c.metadata() for c in chunks])


def check(collection: Collection, embedder: Embedder) -> None:
    """Refuse a collection whose vectors come from another embedding model."""
    meta = collection.metadata or {}
    model, dim = meta.get("embedding_model"), meta.get("embedding_dim")
    if model is None or dim is None:
        raise IndexMismatch(
            f"Chroma collection {collection.name!r} records no embedding model, so its vectors cannot be "
            "trusted; rebuild it with `als-lm rag index` or choose another ALS_RAG__COLLECTION"
        )
    if model != embedder.name or dim != embedder.dim:
        raise IndexMismatch(
            f"Chroma collection {collection.name!r} was built with {model!r} ({dim} dimensions), but questions "
            f"are embedded with {embedder.name!r} ({embedder.dim} dimensions); rebuild it with `als-lm rag index` "
            f"or set ALS_RAG__EMBEDDING_MODEL={model}"
        )


def open_checked(client: ClientAPI, name: str, embedder: Embedder) -> Collection:
    try:
        collection = client.get_collection(name, embedding_function=None)
    except chromadb.errors.NotFoundError:
        raise IndexMismatch(f"Chroma has no collection {name!r}; build it with `als-lm rag index`") from None
    check(collection, embedder)
    return collection


def query(collection: Collection, embedder: Embedder, question: str, k: int) -> list[RetrievedChunk]:
    found = collection.query(query_embeddings=embedder.embed([question]), n_results=k,
                             include=["documents", "metadatas", "distances"])
    return [
        RetrievedChunk(chunk_id=cid, source_id=str(meta["source_id"]), title=str(meta.get("title", "")),
                       text=text, distance=float(dist))
        for cid, text, meta, dist in zip(found["ids"][0], found["documents"][0], found["metadatas"][0],
                                         found["distances"][0])
    ]


def copy(src: Collection, dst: Collection, batch: int = 1000) -> int:
    """Copy every record with its stored vector (no re-embedding); returns how many."""
    total = src.count()
    for offset in range(0, total, batch):
        part = src.get(limit=batch, offset=offset, include=["embeddings", "documents", "metadatas"])
        dst.add(ids=part["ids"], embeddings=part["embeddings"], documents=part["documents"],
                metadatas=part["metadatas"])
    return total

