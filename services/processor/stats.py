"""Corpus statistics (docs/processing.md step 6), gathered as documents leave the pipeline and rendered as
``stats.json`` and ``stats.md``. "Tokens" here are words (``pipeline.WORD``); the BPE token
counts come from the tokenize stage's ``meta.json``."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from typing import Any

from services.processor.pipeline import Document, words
from services.processor.quality import render_markdown as render_quality
from services.processor.terms import TermCounter

FREQUENCY_BANDS = ((1, 1), (2, 9), (10, 99), (100, 999), (1000, None))


class CorpusStats:
    def __init__(self, terms: list[str], top_terms: int = 30):
        self.sizes: dict[tuple[str, str], Counter] = defaultdict(Counter)  # (split, category) -> counts
        self.documents: dict[str, tuple[str, int, int]] = {}  # id -> (category, bytes, words) until assigned
        self.lengths: list[int] = []
        self.vocab: Counter[str] = Counter()
        self.terms = TermCounter(terms)
        self.n_terms = len(terms)
        self.top_terms = top_terms

    def add(self, doc: Document) -> None:
        """Count a kept document as it leaves the pipeline, while the workers are still busy; only its
        sizes wait for the split (``assign``), which needs every document first."""
        tokens = words(doc.text)
        self.documents[doc.id] = (doc.category, len(doc.text.encode()), len(tokens))
        self.lengths.append(len(tokens))
        self.vocab.update(t.lower() for t in tokens)
        self.terms.add(tokens)

    def assign(self, doc_id: str, split: str) -> None:
        category, n_bytes, n_tokens = self.documents.pop(doc_id)
        size = self.sizes[(split, category)]
        size["documents"] += 1
        size["bytes"] += n_bytes
        size["tokens"] += n_tokens

    def summary(self, steps: dict[str, dict[str, int]]) -> dict[str, Any]:
        def total(keys) -> dict[str, int]:
            out: Counter = Counter()
            for k in keys:
                out.update(self.sizes[k])
            return {m: out[m] for m in ("documents", "bytes", "tokens")}

        categories = sorted({c for _, c in self.sizes})
        n_tokens = sum(self.vocab.values())
        freqs = sorted(self.vocab.values(), reverse=True)
        return {
            "total": total(self.sizes),
            "by_split": {s: total(k for k in self.sizes if k[0] == s) for s in ("train", "val")},
            "by_category": {
                c: {**total(k for k in self.sizes if k[1] == c),
                    "train_documents": self.sizes[("train", c)]["documents"],
                    "val_documents": self.sizes[("val", c)]["documents"]}
                for c in categories
            },
            "document_length_tokens": {
                "mean": round(statistics.fmean(self.lengths), 1) if self.lengths else 0,
                "median": statistics.median(self.lengths) if self.lengths else 0,
                "min": min(self.lengths, default=0),
                "max": max(self.lengths, default=0),
            },
            "vocabulary": {
                "unique_tokens": len(self.vocab),
                "tokens": n_tokens,
                "frequency_bands": {
                    f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}":
                        sum(1 for f in freqs if f >= lo and (hi is None or f <= hi))
                    for lo, hi in FREQUENCY_BANDS
                },
                "types_for_50pct_of_tokens": coverage(freqs, 0.5),
                "types_for_90pct_of_tokens": coverage(freqs, 0.9),
                "most_common": self.vocab.most_common(20),
            },
            "medical_terms": {
                "listed": self.n_terms,
                "found": len(self.terms.counts),
                "top": self.terms.counts.most_common(self.top_terms),
            },
            "steps": steps,
        }


def coverage(freqs_desc: list[int], share: float) -> int:
    """How many of the most frequent types make up ``share`` of all tokens."""
    target, running = share * sum(freqs_desc), 0
    for i, f in enumerate(freqs_desc, 1):
        running += f
        if running >= target:
            return i
    return len(freqs_desc)


def render_markdown(s: dict[str, Any]) -> str:
    t = s["total"]
    lines = [
        "# Corpus statistics",
        "",
        "Tokens are words here (the BPE counts are in the tokenize stage's `meta.json`).",
        "",
        "## Size",
        "",
        "| | documents | bytes | tokens |",
        "|---|---:|---:|---:|",
        f"| total | {t['documents']:,} | {t['bytes']:,} | {t['tokens']:,} |",
        *(f"| {name} | {v['documents']:,} | {v['bytes']:,} | {v['tokens']:,} |" for name, v in s["by_split"].items()),
        "",
        "## By source category",
        "",
        "| category | documents | train | val | bytes | share of bytes | tokens |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c, v in s["by_category"].items():
        share = v["bytes"] / t["bytes"] if t["bytes"] else 0
        lines.append(f"| {c} | {v['documents']:,} | {v['train_documents']:,} | {v['val_documents']:,} | "
                     f"{v['bytes']:,} | {share:.1%} | {v['tokens']:,} |")
    d, voc = s["document_length_tokens"], s["vocabulary"]
    lines += [
        "",
        "## Document length (tokens)",
        "",
        f"mean {d['mean']}, median {d['median']}, min {d['min']}, max {d['max']}",
        "",
        "## Vocabulary",
        "",
        (f"{voc['unique_tokens']:,} unique tokens (lower-cased) in {voc['tokens']:,}; "
         f"{voc['types_for_50pct_of_tokens']:,} types make up half of all tokens, "
         f"{voc['types_for_90pct_of_tokens']:,} make up 90 %."),
        "",
        "| occurrences | types |",
        "|---|---:|",
        *(f"| {band} | {n:,} |" for band, n in voc["frequency_bands"].items()),
        "",
        "Most common: " + ", ".join(f"{w} ({n:,})" for w, n in voc["most_common"]),
        "",
        "## Top medical terms",
        "",
        f"{s['medical_terms']['found']} of the {s['medical_terms']['listed']} listed terms occur.",
        "",
        "| term | mentions |",
        "|---|---:|",
        *(f"| {term} | {n:,} |" for term, n in s["medical_terms"]["top"]),
        "",
        "## Pipeline steps",
        "",
        "| step | in | out | what it did |",
        "|---|---:|---:|---|",
    ]
    for step, counts in s["steps"].items():
        # Characters removed per source and rule are in the quality section.
        did = ", ".join(f"{k} {v:,}" for k, v in counts.items()
                        if k not in ("documents_in", "documents_out") and not k.startswith("chars_removed:"))
        lines.append(f"| {step} | {counts.get('documents_in', counts.get('lines', 0)):,} | "
                     f"{counts.get('documents_out', 0):,} | {did or '—'} |")
    if "quality" in s:
        lines += ["", *render_quality(s["quality"])]
    return "\n".join(lines) + "\n"
