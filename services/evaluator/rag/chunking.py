"""Split clean documents into overlapping windows of tokens (docs/rag.md: 512 tokens, 64 overlap).

Tokens are counted with the embedding model's tokenizer: a chunk is what the embedder reads, the
project's BPE tokenizer is a per-run output of the ``tokenize`` stage (the index would then depend
on it), and the generator has a tokenizer of its own anyway. Chunks are spans of the original text
(cut at token offsets), so the generator sees the corpus as written, not the uncased word pieces.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import BaseModel, ConfigDict
from tokenizers import Tokenizer

from shared.schemas.corpus import CleanDocument


class Chunk(BaseModel):
    """One line of ``rag-index/<run>/chunks.jsonl`` and one record of the Chroma collection."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source_id: str
    source: str
    category: str
    title: str
    index: int
    start: int
    end: int
    n_tokens: int
    text: str

    def metadata(self) -> dict[str, str | int]:
        return self.model_dump(exclude={"id", "text"})


def windows(n_tokens: int, size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """``[start, end)`` token windows covering ``n_tokens``; the last one ends at the document's end."""
    if not 0 <= overlap < size:
        raise ValueError(f"overlap ({overlap}) must be at least 0 and below the chunk size ({size})")
    step = size - overlap
    for start in range(0, n_tokens, step):
        end = min(start + size, n_tokens)
        yield start, end
        if end == n_tokens:
            return


def chunk_documents(docs: Iterable[CleanDocument], tokenizer: Tokenizer, size: int, overlap: int,
                    batch: int = 256) -> Iterator[Chunk]:
    """Chunks of every document, in order; batches of documents are tokenized in parallel."""
    pending: list[CleanDocument] = []
    for doc in docs:
        pending.append(doc)
        if len(pending) == batch:
            yield from _chunk_batch(pending, tokenizer, size, overlap)
            pending = []
    yield from _chunk_batch(pending, tokenizer, size, overlap)


def _chunk_batch(docs: list[CleanDocument], tokenizer: Tokenizer, size: int, overlap: int) -> Iterator[Chunk]:
    encodings = tokenizer.encode_batch([d.text for d in docs], add_special_tokens=False) if docs else []
    for doc, enc in zip(docs, encodings):
        offsets = enc.offsets
        for i, (start, end) in enumerate(windows(len(offsets), size, overlap)):
            first, last = offsets[start][0], offsets[end - 1][1]
            yield Chunk(id=f"{doc.id}#{i}", source_id=doc.id, source=doc.source, category=doc.category,
                        title=doc.title, index=i, start=first, end=last, n_tokens=end - start,
                        text=doc.text[first:last])
