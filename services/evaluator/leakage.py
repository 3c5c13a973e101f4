"""Leakage and memorisation: what the training corpus already contains of the benchmark and the answers.

Leakage: the share of a benchmark question's and reference answer's word n-grams that occur in the
corpus; an item whose reference answer overlaps beyond a threshold is flagged, because the scratch
model may reproduce it without "knowing" anything. Memorisation: per answer, the longest run of words
it shares with the corpus (13+ words verbatim is the usual contamination yardstick, GPT-3 §4).

Both stream the corpus once and keep only the benchmark's / answers' n-grams in memory, so a 100 MB
corpus costs one pass, not an index.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

from shared.schemas.eval import BenchmarkItem

_WORD = re.compile(r"[a-z0-9]+")
VERBATIM_WORDS = 13


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def leakage(items: list[BenchmarkItem], corpus_docs: Iterable[str], n: int, threshold: float) -> list[dict]:
    """Per item: question/answer n-gram overlap with the corpus, and whether it is flagged as leaked."""
    wanted = {}
    for item in items:
        wanted[(item.id, "question")] = _ngrams(tokens(item.question), n)
        wanted[(item.id, "answer")] = _ngrams(tokens(item.reference_answer), n)
    targets = set().union(*wanted.values())
    seen: set[tuple[str, ...]] = set()
    for doc in corpus_docs:
        words = tokens(doc)
        for i in range(len(words) - n + 1):
            gram = tuple(words[i:i + n])
            if gram in targets:
                seen.add(gram)

    def share(key: tuple[str, str]) -> float:
        grams = wanted[key]
        return len(grams & seen) / len(grams) if grams else 0.0

    out = []
    for item in items:
        answer = share((item.id, "answer"))
        out.append({
            "id": item.id,
            "question_overlap": share((item.id, "question")),
            "answer_overlap": answer,
            "leaked": answer >= threshold,
        })
    return out


def longest_overlaps(answers: dict[str, str], corpus_docs: Iterable[str], seed_words: int = 4) -> dict[str, dict]:
    """Per answer id: the longest word sequence it shares with the corpus (length and text)."""
    words = {key: tokens(text) for key, text in answers.items()}
    index: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
    for key, ws in words.items():
        for j in range(len(ws) - seed_words + 1):
            index[tuple(ws[j:j + seed_words])].append((key, j))
    best = {key: (0, 0) for key in answers}  # (length, start in answer)
    for doc in corpus_docs:
        dw = tokens(doc)
        for i in range(len(dw) - seed_words + 1):
            for key, j in index.get(tuple(dw[i:i + seed_words]), ()):
                aw = words[key]
                length = seed_words
                while i + length < len(dw) and j + length < len(aw) and dw[i + length] == aw[j + length]:
                    length += 1
                if length > best[key][0]:
                    best[key] = (length, j)
    return {
        key: {"words": length, "text": " ".join(words[key][start:start + length]),
              "verbatim": length >= VERBATIM_WORDS}
        for key, (length, start) in best.items()
    }
