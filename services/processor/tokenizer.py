"""The ALS tokenizer (docs/processing.md): byte-level BPE trained on ``corpus.txt``, validated against the
curated medical terms, and the token shards the trainer reads.

Validation tokenizes each term as it appears inside running text, after a space (``" riluzole"``),
because that is how the model meets it. A term fragments when one of its pre-tokenizer pieces
takes more than ``fragment_tokens`` tokens. For a plain word that is the seed's "more than 2
tokens"; a term the byte-level pre-tokenizer always cuts ("upper motor neuron", "TDP-43",
"C9orf72": letters, digits and punctuation are separate pieces) is judged piece by piece, since
no vocabulary size can merge across those cuts and they must not drive the retrain decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from shared.errors import InvalidInput

SPECIAL_TOKENS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"]  # ids 0..3, in this order
MAX_UINT16_VOCAB = 65535


def train_bpe(corpus: Path, vocab_size: int, min_frequency: int) -> Tokenizer:
    """The seed's §3.3 recipe, plus the byte-level decoder so ids decode back to the exact text."""
    tokenizer = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        min_frequency=min_frequency,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([str(corpus)], trainer=trainer)
    for i, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != i:
            raise RuntimeError(f"special token {token} did not get id {i}")
    return tokenizer


def validate_terms(tokenizer: Tokenizer, terms: list[tuple[str, str]], fragment_tokens: int) -> dict[str, Any]:
    rows = []
    for group, term in terms:
        text = " " + term
        ids = tokenizer.encode(text).ids
        pieces = [text[a:b] for _, (a, b) in tokenizer.pre_tokenizer.pre_tokenize_str(text)]
        per_piece = [len(tokenizer.encode(p).ids) for p in pieces]
        rows.append({
            "group": group,
            "term": term,
            "tokens": [tokenizer.decode([i]) for i in ids],
            "n_tokens": len(ids),
            "n_pieces": len(pieces),
            "fragmented": max(per_piece) > fragment_tokens,
        })
    n_frag = sum(r["fragmented"] for r in rows)
    return {
        "vocab_size": tokenizer.get_vocab_size(),
        "terms": len(rows),
        "fragmented": n_frag,
        "fragmented_fraction": round(n_frag / len(rows), 4),
        "rows": rows,
    }


def choose_tokenizer(corpus: Path, cfg, terms: list[tuple[str, str]]) -> tuple[Tokenizer, dict[str, Any]]:
    """Train at ``vocab_size``; if too many terms fragment, retrain at ``fallback_vocab_size`` (§3.2).

    Returns the tokenizer kept and a report of every attempt and the decision."""
    attempts = []
    tokenizer = train_bpe(corpus, cfg.vocab_size, cfg.min_frequency)
    report = validate_terms(tokenizer, terms, cfg.fragment_tokens)
    attempts.append({"requested_vocab_size": cfg.vocab_size, **report})
    if report["fragmented_fraction"] <= cfg.max_fragmented:
        decision = (f"kept vocab {cfg.vocab_size}: {report['fragmented_fraction']:.1%} of terms fragment "
                    f"(limit {cfg.max_fragmented:.0%})")
    else:
        tokenizer = train_bpe(corpus, cfg.fallback_vocab_size, cfg.min_frequency)
        retry = validate_terms(tokenizer, terms, cfg.fragment_tokens)
        attempts.append({"requested_vocab_size": cfg.fallback_vocab_size, **retry})
        decision = (f"{report['fragmented_fraction']:.1%} of terms fragment at vocab {cfg.vocab_size} "
                    f"(limit {cfg.max_fragmented:.0%}): retrained at {cfg.fallback_vocab_size}, "
                    f"{retry['fragmented_fraction']:.1%} fragment")
        if retry["vocab_size"] == report["vocab_size"]:
            decision += (f"; the corpus ran out of pairs seen {cfg.min_frequency}+ times at "
                         f"{report['vocab_size']} tokens, so the larger target cannot help: more text can")
        elif retry["fragmented_fraction"] > cfg.max_fragmented:
            decision += "; still over the limit, kept the larger vocabulary"
    actual = tokenizer.get_vocab_size()
    if actual > MAX_UINT16_VOCAB:
        raise InvalidInput(f"vocabulary of {actual} tokens does not fit the uint16 shards (max {MAX_UINT16_VOCAB})")
    return tokenizer, {"decision": decision, "vocab_size": actual, "attempts": attempts}


def render_validation(report: dict[str, Any], fragment_tokens: int) -> str:
    final = report["attempts"][-1]
    lines = [
        "# Tokenizer validation",
        "",
        f"Decision: {report['decision']}.",
        "",
        "| requested vocab | actual vocab | terms | fragmented | share |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {a['requested_vocab_size']:,} | {a['vocab_size']:,} | {a['terms']} | {a['fragmented']} | "
          f"{a['fragmented_fraction']:.1%} |" for a in report["attempts"]),
        "",
        ("Each term is tokenized as it appears mid-sentence (after a space). The byte-level pre-tokenizer "
         "cuts letters, digits and punctuation apart (`pieces` is that floor); **flagged** terms have a "
         f"piece that takes more than {fragment_tokens} tokens. Tokens of the kept tokenizer:"),
        "",
        "| group | term | tokens | n | pieces | flag |",
        "|---|---|---|---:|---:|---|",
    ]
    for r in final["rows"]:
        shown = " · ".join(f"`{t}`" for t in r["tokens"])
        lines.append(f"| {r['group']} | {r['term']} | {shown} | {r['n_tokens']} | {r['n_pieces']} | "
                     f"{'**flagged**' if r['fragmented'] else ''} |")
    return "\n".join(lines) + "\n"


def _texts(jsonl: Path, batch: int = 512) -> Iterator[list[str]]:
    texts: list[str] = []
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if len(texts) == batch:
                yield texts
                texts = []
    if texts:
        yield texts


def write_shard(tokenizer: Tokenizer, jsonl: Path, out: Path) -> int:
    """Tokenize every document of ``jsonl`` into ``out`` as uint16, ``<|eos|>`` after each
    document (nanoGPT's layout); returns the number of tokens written."""
    vocab = tokenizer.get_vocab_size()
    if vocab > MAX_UINT16_VOCAB:
        raise InvalidInput(f"vocabulary of {vocab} tokens does not fit uint16 token shards (max {MAX_UINT16_VOCAB})")
    eos = tokenizer.token_to_id("<|eos|>")
    n = 0
    with open(out, "wb") as f:
        for texts in _texts(jsonl):
            for enc in tokenizer.encode_batch(texts):
                ids = np.array(enc.ids + [eos], dtype=np.uint16)
                ids.tofile(f)
                n += len(ids)
    return n
