"""Time the RAG baseline's retrieval side: chunking, embedding + indexing throughput, and top-k query
latency (design §9), with the same code `als-lm rag index` and `als-lm eval run --system rag` use.

    python benchmarks/bench_rag.py                                   # the bundled sample corpus
    python benchmarks/bench_rag.py --docs volumes/bench/processed/train.jsonl --max-mb 2

Documents are CleanDocument lines (a `process` output) or, for the bundled sample, RawDocument lines
taken as they are. Queries are the benchmark's questions, each embedded and searched on its own, as
the runner does. Embedding runs on CPU; on a shared machine, pass --threads to pin torch's threads.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def read_docs(paths: list[Path], max_bytes: int | None):
    from shared.schemas.corpus import CleanDocument

    docs, size = [], 0
    for path in paths:
        for line in path.open(encoding="utf-8"):
            raw = json.loads(line)
            docs.append(CleanDocument(id=raw["id"], source=raw["source"], title=raw.get("title", ""),
                                      text=raw["text"],
                                      category=raw.get("category") or raw.get("metadata", {}).get("category", "research")))
            size += len(raw["text"].encode())
            if max_bytes and size >= max_bytes:
                return docs, size
    return docs, size


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@click.command()
@click.option("--docs", "doc_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="JSONL documents (repeatable); default: services/scraper/sample/*.jsonl.")
@click.option("--max-mb", type=float, default=None, help="Stop reading documents after this much text.")
@click.option("--chunk-tokens", default=512, show_default=True)
@click.option("--overlap", default=64, show_default=True)
@click.option("--top-k", default=5, show_default=True)
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
@click.option("--json-out", type=click.Path(path_type=Path), default=None)
def main(doc_paths, max_mb, chunk_tokens, overlap, top_k, threads, json_out):
    import torch

    from services.evaluator.inputs import load_benchmark
    from services.evaluator.rag import index
    from services.evaluator.rag.chunking import chunk_documents
    from services.evaluator.rag.embeddings import Embedder
    from services.evaluator.settings import BENCHMARK

    if threads:
        torch.set_num_threads(threads)
    paths = list(doc_paths) or sorted((ROOT / "services/scraper/sample").glob("*.jsonl"))
    docs, size = read_docs(paths, int(max_mb * 2**20) if max_mb else None)

    t = time.perf_counter()
    embedder = Embedder("all-MiniLM-L6-v2")
    load_s = time.perf_counter() - t

    t = time.perf_counter()
    chunks = list(chunk_documents(docs, embedder.tokenizer, chunk_tokens, overlap))
    chunk_s = time.perf_counter() - t
    tokens = sum(c.n_tokens for c in chunks)

    with tempfile.TemporaryDirectory() as tmp:
        collection = index.create(index.embedded(Path(tmp)), "bench-corpus", embedder, "bench")
        embed_s = add_s = 0.0
        for i in range(0, len(chunks), 64):
            part = chunks[i:i + 64]
            t = time.perf_counter()
            vectors = embedder.embed([c.text for c in part])
            embed_s += time.perf_counter() - t
            t = time.perf_counter()
            index.add(collection, part, vectors)
            add_s += time.perf_counter() - t

        questions = [item.question for item in load_benchmark(BENCHMARK)]
        index.query(collection, embedder, questions[0], top_k)  # warm-up
        total, search = [], []
        for q in questions:
            t = time.perf_counter()
            vector = embedder.embed([q])
            t_embed = time.perf_counter()
            collection.query(query_embeddings=vector, n_results=top_k, include=["documents", "metadatas", "distances"])
            done = time.perf_counter()
            total.append(done - t)
            search.append(done - t_embed)

    result = {
        "corpus": [str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in paths],
        "documents": len(docs), "text_mb": round(size / 2**20, 2), "chunks": len(chunks), "tokens": tokens,
        "chunk_tokens": chunk_tokens, "overlap": overlap, "torch_threads": torch.get_num_threads(),
        "model_load_s": round(load_s, 1),
        "chunking_s": round(chunk_s, 2), "chunking_tokens_per_s": round(tokens / chunk_s),
        "embed_s": round(embed_s, 1), "embed_tokens_per_s": round(tokens / embed_s),
        "embed_chunks_per_s": round(len(chunks) / embed_s, 2),
        "chroma_add_s": round(add_s, 2), "chroma_add_chunks_per_s": round(len(chunks) / add_s),
        "index_mb_per_hour": round(size / 2**20 / (chunk_s + embed_s + add_s) * 3600, 2),
        "queries": len(questions), "top_k": top_k,
        "query_p50_ms": round(statistics.median(total) * 1000, 1),
        "query_p95_ms": round(percentile(total, 0.95) * 1000, 1),
        "search_only_p50_ms": round(statistics.median(search) * 1000, 2),
        "search_only_p95_ms": round(percentile(search, 0.95) * 1000, 2),
        "load_average": [round(x, 1) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
