"""Deduplication (docs/processing.md step 2): near-duplicate documents by MinHash LSH, then exact
duplicate paragraphs by SHA-256. The first copy in input order is kept."""

from __future__ import annotations

import hashlib
import zlib

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from services.processor.pipeline import WORD, Document, RunLog, Step

MINHASH_SEED = 1  # fixed: signatures computed in different processes must agree
SCHEME = "affine32"  # datasketch 2's default: 32-bit values, so a signature is num_perm * 4 bytes


def shingles(text: str, n: int) -> set[bytes]:
    """Lower-cased word n-grams; punctuation and spacing do not make two texts differ."""
    tokens = [w.lower() for w in WORD.findall(text)]
    if len(tokens) <= n:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i:i + n]).encode() for i in range(len(tokens) - n + 1)}


class MinHashSignature(Step):
    """Attach a MinHash signature; stateless, so it runs in the worker processes."""

    name = "minhash_signature"

    def __init__(self, num_perm: int, shingle_words: int):
        self.num_perm, self.shingle_words = num_perm, shingle_words
        # Drawn once, not per document: the same seed gives the same permutations anyway.
        self.permutations = MinHash(num_perm=num_perm, seed=MINHASH_SEED, scheme=SCHEME).permutations

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        # CRC32 instead of the default SHA-1: affine32 first mixes every input hash with the
        # MurmurHash3 finalizer, so a fast checksum is as good a start and hashing is ~5x cheaper.
        m = MinHash(num_perm=self.num_perm, seed=MINHASH_SEED, hashfunc=zlib.crc32,
                    permutations=self.permutations, scheme=SCHEME)
        m.update_batch(list(shingles(doc.text, self.shingle_words)))
        doc.signature = m.hashvalues
        return doc


# LSH finds a pair at its own threshold only about half the time (the S-curve's midpoint): at 0.85
# with 128 permutations datasketch picks 8 bands of 16 rows, which finds 46 % of pairs at J=0.85 and
# 81 % at 0.9. Banding for 0.15 lower (14 bands of 9 rows) finds 97.5 % at 0.85 and 99.9 % at 0.9;
# the extra candidates cost one signature comparison each.
CANDIDATE_MARGIN = 0.15


class NearDedup(Step):
    """Drop a document whose estimated Jaccard similarity with an earlier kept one reaches the
    threshold. LSH, banded below the threshold, only proposes candidates; the signature
    comparison decides, so a document at 0.7 that shares a band is still kept."""

    name = "near_dedup"
    stateless = False

    def __init__(self, threshold: float, num_perm: int):
        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=max(0.05, threshold - CANDIDATE_MARGIN), num_perm=num_perm)
        self.kept: dict[str, np.ndarray] = {}

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        if doc.signature is None:
            raise ValueError(f"near_dedup needs minhash_signature to run first (document {doc.id})")
        sig = doc.signature
        lean = LeanMinHash(seed=MINHASH_SEED, hashvalues=sig, scheme=SCHEME)
        best, best_j = None, 0.0
        for other in self.lsh.query(lean):
            j = float(np.mean(self.kept[other] == sig))
            if j > best_j:
                best, best_j = other, j
        doc.signature = None
        if best is not None and best_j >= self.threshold:
            log.exclude(self.name, "document", "near_duplicate", doc.id, doc.text,
                        duplicate_of=best, jaccard=round(best_j, 3))
            return None
        self.lsh.insert(doc.id, lean)
        self.kept[doc.id] = sig
        return doc


class ParagraphDedup(Step):
    """Remove a paragraph whose SHA-256 (after collapsing whitespace and case) was seen before.
    Paragraphs shorter than ``min_words`` (headings) are left alone."""

    name = "paragraph_dedup"
    stateless = False

    def __init__(self, min_words: int):
        self.min_words = min_words
        self.seen: set[bytes] = set()

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        kept = []
        for paragraph in doc.text.split("\n\n"):
            if len(paragraph.split()) < self.min_words:
                kept.append(paragraph)
                continue
            digest = hashlib.sha256(" ".join(paragraph.split()).casefold().encode()).digest()[:16]
            if digest in self.seen:
                log.exclude(self.name, "paragraph", "exact_duplicate", doc.id, paragraph)
            else:
                self.seen.add(digest)
                kept.append(paragraph)
        if len(kept) == doc.text.count("\n\n") + 1:
            return doc
        if not any(len(p.split()) >= self.min_words for p in kept):
            log.exclude(self.name, "document", "all_paragraphs_duplicated", doc.id, doc.text)
            return None
        log.count(self.name, "documents_changed:paragraphs_removed")
        doc.text = "\n\n".join(kept)
        return doc
