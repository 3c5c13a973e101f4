"""Evidence sentences and a lexical index over them, for judging claims (issue 18).

A claim is judged against the evidence *sentence* that matches it best, so every text the judge
may consult (the item's reference answer, the corpus, the retrieved chunks) is cut into sentences
once and indexed by concept (``normalize.content_stems``: stems with the fact scorer's synonyms, so
"blocks" finds "inhibits"). Candidates for a claim are ranked by the IDF-weighted share of the
claim's concepts a sentence contains; only the few best are embedded and judged, which keeps the
corpus side cheap: the corpus is never embedded as a whole.

Why an inverted index in numpy and not scikit-learn's TfidfVectorizer: the concepts must be the
scorer's own (synonyms, number normalisation), and ranking needs nothing but postings and IDF.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from services.evaluator.scoring.normalize import content_stems, normalize

# A sentence ends at . ! ? followed by space and a capital, digit, quote or bracket; at a line break;
# and before a list bullet. Abbreviations and decimals ("e.g. riluzole", "2.5 mg") do not end one.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\s*\n\s*(?:[-*\u2022]\s+|\d{1,2}[.)]\s+)?")
_ABBREVIATIONS = re.compile(
    r"(?:\b(?:e\.g|i\.e|et al|vs|etc|dr|prof|approx|fig|figs|no|nos|st|mr|mrs|ms|inc|ltd|jr|sr|ca|cf|resp|ref|"
    r"refs|u\.s|u\.k|e\.u)\.|\b[A-Z]\.)$",
    re.IGNORECASE,
)


def sentences(text: str) -> list[str]:
    """The text's sentences as written (stripped), blank pieces dropped."""
    out: list[str] = []
    for piece in _BOUNDARY.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if out and _ABBREVIATIONS.search(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def concepts(normalized: str) -> frozenset[str]:
    return frozenset(content_stems(normalized))


@dataclass(frozen=True)
class Sentence:
    text: str  # as written
    norm: str
    concepts: frozenset[str]
    source: str  # "reference", "corpus", or the retrieved chunk's marker "[3]"
    document: str | None = None  # the corpus document (or chunk's source document) it comes from


class SentencePool:
    """Sentences with concept postings; ``idf`` may come from a larger pool (the corpus) so a short
    pool (a reference answer, five chunks) weighs words as the corpus does."""

    def __init__(self, items: list[Sentence], idf: dict[str, float] | None = None):
        self.items = items
        postings: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(items):
            for c in s.concepts:
                postings[c].append(i)
        self.postings = {c: np.asarray(ids, dtype=np.int64) for c, ids in postings.items()}
        n = len(items)
        self.idf = idf if idf is not None else {c: math.log((n + 1) / (len(ids) + 1)) + 1.0
                                                for c, ids in self.postings.items()}
        self._unknown = max(self.idf.values(), default=1.0)

    @classmethod
    def build(cls, texts: Iterable[tuple[str, str, str | None]], idf: dict[str, float] | None = None) -> SentencePool:
        """From (text, source, document) triples; each text is cut into sentences."""
        items = []
        for text, source, document in texts:
            for s in sentences(text):
                norm = normalize(s)
                if c := concepts(norm):
                    items.append(Sentence(s, norm, c, source, document))
        return cls(items, idf)

    def weight(self, concept: str) -> float:
        return self.idf.get(concept, self._unknown)

    def candidates(self, wanted: frozenset[str], k: int, min_share: float) -> list[tuple[int, float]]:
        """Up to ``k`` (sentence index, share) pairs, best first: share is the IDF-weighted part of
        ``wanted`` a sentence contains; sentences below ``min_share`` are not candidates."""
        total = sum(self.weight(c) for c in wanted)
        hits = [(self.postings[c], self.weight(c)) for c in wanted if c in self.postings]
        if not hits or total == 0 or not self.items:
            return []
        ids = np.concatenate([p for p, _ in hits])
        weights = np.concatenate([np.full(len(p), w) for p, w in hits])
        scores = np.bincount(ids, weights=weights, minlength=len(self.items)) / total
        eligible = np.flatnonzero(scores >= min_share)
        best = eligible[np.argsort(-scores[eligible], kind="stable")[:k]]
        return [(int(i), float(scores[i])) for i in best]
