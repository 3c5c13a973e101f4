"""Fact exposure: how many training documents state each key fact (Kandpal et al., ICML 2023).

A from-scratch model can only recall what its training split showed it, so accuracy is read per
exposure bucket: facts the training split states often, once, only in the validation split, or
nowhere. A fact counts as stated in a document when its normalised words occur there as a
contiguous phrase (the scorer's ``normalize``, so ``TDP-43`` matches ``TARDBP``); any of its
aliases counts. This is deliberately literal: a paraphrase in the corpus is not counted, so the
buckets undercount exposure rather than invent it.

Counted alone, a common fact (``survival``) lands in the 5+ bucket whatever the question asks. Kandpal
et al. count the documents in which the question's *subject* and the answer co-occur:
``question_subject`` picks it by a general rule (the question's rarest content word that the training
split contains) and ``fact_exposure(..., subject=...)`` counts only the documents that hold both.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from services.evaluator.scoring.normalize import STOPWORDS, normalize
from shared.schemas.corpus import CleanDocument
from shared.schemas.eval import BenchmarkItem, KeyFact
from shared.schemas.experiment import EXPOSURE_BUCKETS, ExposureBucket, FactExposure, ItemExposure


def plain(text: str) -> str:
    """Normalised words separated by single spaces and padded, so ``in`` tests whole-word phrases."""
    return " " + re.sub(r"[^\w]+", " ", normalize(text)).strip() + " "


def bucket(train_docs: int, validation_docs: int) -> ExposureBucket:
    if train_docs == 0:
        return "validation_only" if validation_docs else "unseen"
    if train_docs == 1:
        return "1"
    return "2-4" if train_docs <= 4 else "5+"


def count_documents(phrases: list[str], documents: list[str]) -> int:
    """Documents (already ``plain``) that contain any of the phrases."""
    wanted = [p for p in (plain(p) for p in phrases) if p.strip()]
    return sum(any(p in doc for p in wanted) for doc in documents)


def item_bucket(facts: list[FactExposure], counted: list[bool]) -> ExposureBucket:
    """The bucket of the item's median fact (the lower median), over its scored facts when it has any."""
    chosen = [f for f, c in zip(facts, counted) if c] or facts
    order = sorted(EXPOSURE_BUCKETS.index(f.bucket) for f in chosen)
    return EXPOSURE_BUCKETS[order[(len(order) - 1) // 2]]


def question_subject(question: str, documents: list[str], names: Collection[str] = ()) -> str | None:
    """The question's subject: among its content words (normalised, not stopwords), those that are
    ``names`` (an entity list) when it has any, the one in the fewest training documents (``plain``)
    that hold it at all, ties broken alphabetically; None when the training split holds none of them.
    The rarest word names what the question is about, not the disease every document shares."""
    words = sorted({w for w in plain(question).split() if w not in STOPWORDS and not w.isdigit()})
    frequency = {w: sum(f" {w} " in doc for doc in documents) for w in words}
    present = [w for w in words if frequency[w]]
    named = [w for w in present if w in names]
    return min(named or present, key=lambda w: (frequency[w], w)) if present else None


def fact_exposure(fact: KeyFact, train: list[str], validation: list[str],
                  subject: str | None = None) -> FactExposure:
    """Documents stating the fact; with a ``subject``, only those that also contain it (co-occurrence)."""
    phrases = [fact.text, *fact.aliases]
    if subject is not None:
        train, validation = ([d for d in docs if f" {subject} " in d] for docs in (train, validation))
    n_train, n_val = count_documents(phrases, train), count_documents(phrases, validation)
    return FactExposure(fact=fact.text, train_docs=n_train, validation_docs=n_val, bucket=bucket(n_train, n_val))


def exposure(items: list[BenchmarkItem], train: Iterable[CleanDocument],
             validation: Iterable[CleanDocument]) -> list[ItemExposure]:
    """Per item, each key fact's document counts in the training and validation splits, and the buckets."""
    train_text = [plain(f"{d.title}\n{d.text}") for d in train]
    val_text = [plain(f"{d.title}\n{d.text}") for d in validation]
    result = []
    for item in items:
        facts = [fact_exposure(f, train_text, val_text) for f in item.key_facts]
        result.append(ItemExposure(id=item.id, facts=facts,
                                   bucket=item_bucket(facts, [f.counted for f in item.key_facts])))
    return result
