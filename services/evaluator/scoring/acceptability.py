"""Whether a response is language that states something, or a non-answer (empty, a loop, word salad).

A tiny model's output is often a chain of frequent corpus phrases ("the most common in the most common in ALS,
and the trial, which is a single phase 2"): every word is on topic, so the fact and claim rules read statements
into it. It is recognised by how improbable it is *as a sentence* given how common its words are, the syntactic
log-odds ratio (SLOR; Pauls & Klein 2012, Lau, Clark & Lappin 2017, where it tracked human acceptability best):

    SLOR = (log P_LM(response | question) - log P_unigram(response)) / words

The RAG prompt's own markup that a generator copies into its answer (a passage's header ``[4] Title (source:
id)``, a bare ``[4]``; ``rag/pipeline.py``) is removed first: it is a citation, not a sentence.

``P_LM`` is a general language model (the bundled Gemma 3 270M through llama.cpp), ``P_unigram`` the words'
frequencies in general English (``wordfreq``). Fluent text, however technical, is far more probable under the
language model than its words are on their own; a salad of frequent words is not. Dividing by the unigram term
is what keeps rare terms (C9orf72, ALSFRS-R) from looking like nonsense.

``non_answer`` gives the reason a response states nothing, or None:
  empty       nothing but whitespace;
  repetition  at least ``REPEAT_MIN_WORDS`` words whose distinct word 3-grams are under ``REPEAT_DISTINCT``
              of all its 3-grams (a loop);
  garbled     at least ``MIN_WORDS`` words, and SLOR below ``EvalConfig.acceptability_threshold``. A shorter
              answer ("May 2023.", "In 1998.") is not judged: over two or three words the ratio says more about
              the words than about the sentence.

The threshold was set once, on the labelled real answers of ``benchmark/real_outputs/`` (development data,
docs/evaluation.md), and measured on the validation set v3, which it was not tuned on.
"""

from __future__ import annotations

import atexit
import hashlib
import math
import os
import re
import sqlite3
from functools import cache
from pathlib import Path

from shared.schemas.eval import NonAnswer
from shared.settings import cache_dir

REPEAT_MIN_WORDS = 8
MIN_WORDS = 5
REPEAT_DISTINCT = 0.5
# Only the first words are read: enough to tell language from salad, and the language model's time grows with
# every token (the logits over Gemma's 262k-token vocabulary at each position dominate it).
MAX_WORDS = 60
# A word wordfreq has never seen (a gene symbol, a misspelling) is as rare as its rarest listed words.
UNSEEN_WORD_FREQUENCY = 1e-8
_WORD = re.compile(r"[\w'-]+")
# rag/pipeline.py numbers each passage "[n] title (source: id)"; answers copy the header or cite "[n]"
_CITATION = re.compile(r"\[\d+\](?:[^\[\n]*?\(source: [^)]*\))?")


def repetitive(text: str) -> bool:
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < REPEAT_MIN_WORDS:
        return False
    grams = list(zip(words, words[1:], words[2:]))
    return len(set(grams)) < REPEAT_DISTINCT * len(grams)


def words_judged(response: str) -> int:
    """Words of ``response`` once the RAG prompt's citations are removed (``MIN_WORDS`` of them are needed)."""
    return len(_WORD.findall(_CITATION.sub(" ", response)))


def unigram_logprob(words: list[str]) -> float:
    from wordfreq import word_frequency

    return sum(math.log(max(word_frequency(w, "en"), UNSEEN_WORD_FREQUENCY)) for w in words)


@cache
def _language_model(path: Path, threads: int):
    from services.evaluator.probe.backends.llama import LlamaBackend

    backend = LlamaBackend.from_gguf(path, threads=threads, name="acceptability", n_ctx=2048)
    # freed before the interpreter tears llama_cpp's module down, which would make its own finaliser fail
    atexit.register(backend.llm.close)
    return backend


class SlorCache:
    """SLOR values on disk, keyed by the model file and the text: a response is read by the language model
    once per machine (about half a second of a core each), however often it is scored again."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("CREATE TABLE IF NOT EXISTS slor (key TEXT PRIMARY KEY, value REAL NOT NULL)")

    @staticmethod
    def key(model: Path, question: str, text: str) -> str:
        stat = model.stat()
        return hashlib.sha256(f"{model.name}\0{stat.st_size}\0{question}\0{text}".encode()).hexdigest()

    def get(self, key: str) -> float | None:
        row = self._db.execute("SELECT value FROM slor WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, value: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO slor VALUES (?, ?)", (key, value))


class Acceptability:
    """SLOR of responses under the bundled Gemma (loaded on first use); see the module docstring."""

    def __init__(self, threshold: float, threads: int = 2, gguf: Path | None = None, cache: Path | None = None):
        self.threshold, self.threads, self.gguf = threshold, threads, gguf
        self.cache_path = cache or cache_dir() / "acceptability.sqlite"
        self._cache = SlorCache(self.cache_path)

    def slor(self, question: str, response: str) -> float:
        from wordfreq import tokenize

        text = " ".join(_CITATION.sub(" ", response).split()[:MAX_WORDS])
        words = tokenize(text, "en")
        if not words:  # punctuation, symbols or citations alone
            return -math.inf
        key = self._cache.key(self._gguf(), question, text)
        value = self._cache.get(key)
        if value is None:
            [lm] = self._model().loglikelihoods(f"Question: {question}\nAnswer:", [" " + text])
            value = (lm - unigram_logprob(words)) / len(words)
            self._cache.put(key, value)
        return value

    def non_answer(self, question: str, response: str) -> NonAnswer | None:
        """Why ``response`` states nothing (see the module docstring), or None."""
        if not response.strip():
            return "empty"
        if repetitive(response):
            return "repetition"
        if words_judged(response) >= MIN_WORDS and self.slor(question, response) < self.threshold:
            return "garbled"
        return None

    def _gguf(self) -> Path:
        if self.gguf is None:
            from services.evaluator.rag.generate import bundled_gguf

            self.gguf = bundled_gguf()
        return Path(self.gguf)

    def _model(self):
        return _language_model(self._gguf(), min(self.threads, os.cpu_count() or 1))
