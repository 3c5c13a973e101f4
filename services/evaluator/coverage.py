"""Key facts the corpus never states (issue 14): RAG cannot retrieve them and the scratch model never read them.

A fact counts as stated when its text or one of its aliases occurs in a document as a whole-word phrase
after normalisation, or when one sentence holds every content word of it as the scorer compares words
(``normalize`` then ``content_stems``: number words, synonyms and inflections meet; stopwords and
negation cues are ignored). The sentence test is there because a fact such as "Relyvrio 2022" is written
"approved Relyvrio in September 2022"; polarity is ignored because a denial is retrievable wherever its
topic is. Numeric facts are looked up by their written numbers only, not by every number inside
``accepted_range``. The list is therefore an upper bound on what is truly absent, for a person to read
before marking an item ``answerable=false``.

The corpus is streamed once, and only the facts' words are kept in memory (as in ``leakage.py``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from services.evaluator.scoring.normalize import content_stems, normalize, words
from shared import runs
from shared.manifest import Manifest
from shared.schemas.eval import BenchmarkItem
from shared.store import ArtifactStore

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_PLAIN_WORD = re.compile(r"[a-z0-9%]+")


@dataclass(frozen=True)
class AbsentFact:
    """One key fact (by item and position) whose text and aliases occur nowhere in the corpus."""

    item_id: str
    index: int
    text: str
    counted: bool
    answerable: bool


def content(text: str) -> frozenset[str]:
    """The concepts a sentence must hold to state ``text``; all its words when every one is a stopword."""
    norm = normalize(text)
    return frozenset(content_stems(norm) or words(norm))


def phrase(text: str) -> str:
    """Normalised words split at hyphens and padded, so ``in`` is a whole-word, hyphen-blind match."""
    return " " + " ".join(_PLAIN_WORD.findall(normalize(text))) + " "


def absent_facts(items: Iterable[BenchmarkItem], documents: Iterable[str]) -> list[AbsentFact]:
    """Every key fact, counted or not, that no document states, in benchmark order."""
    items = list(items)
    names = {(item.id, i): {*fact.aliases, fact.text} for item in items for i, fact in enumerate(item.key_facts)}
    pending = set().union(*names.values())
    bags = {name: content(name) for name in pending}
    phrases = {name: phrase(name) for name in pending}
    by_concept: dict[str, set[str]] = defaultdict(set)
    for name, bag in bags.items():
        for concept in bag:
            by_concept[concept].add(name)
    for document in documents:
        if not pending:
            break
        text = phrase(document)
        pending -= {name for name in pending if phrases[name] in text}
        for sentence in _SENTENCE.split(document):
            held = content(sentence)
            candidates = set().union(*(by_concept.get(c, ()) for c in held)) & pending
            pending -= {name for name in candidates if bags[name] <= held}
    return [AbsentFact(item.id, i, fact.text, fact.counted, item.answerable)
            for item in items for i, fact in enumerate(item.key_facts) if names[(item.id, i)] <= pending]


def latest_corpus(store: ArtifactStore, dest: Path) -> tuple[Manifest, Path]:
    """The latest ``process`` run and its ``corpus.txt`` fetched to ``dest`` (raises ``RunNotFound``)."""
    process = runs.latest(store, "process")
    return process, runs.fetch(store, process.output("corpus.txt"), dest)
