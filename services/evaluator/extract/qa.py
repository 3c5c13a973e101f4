"""Question-answer text for half of the probed facts, written from the training sentences that state them.

Allen-Zhu & Li (2023, Physics of Language Models 3.1) find that a model pretrained on statements answers
questions about them only when its pretraining data also holds question-answer text for part of the
entities. This writes that text from our own training split, never from the benchmark: each
``qa_exposed`` fact's memorisation probe item is a training sentence cut just before the fact's value;
the question is that sentence with the value replaced by a wh-phrase of the value's type ("... approved by
the FDA in what year ...?") and the answer is the value as the sentence writes it. A pair is dropped,
with its reason counted, when it shares a word n-gram with any benchmark question or reference answer,
or when it states a ``qa_test`` fact (the item's subject and the fact's value together, as the exposure
counts a document that states it), so the QA text teaches nothing about the test half.

The halves are drawn per benchmark item (a seeded hash of its id), not per fact: the QA condition asks a
benchmark question about all of its facts at once, so an item whose facts fell in both halves would be
half taught.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from services.evaluator.base_condition import block
from services.evaluator.exposure import count_documents, plain
from services.evaluator.leakage import tokens
from services.evaluator.scoring.evidence import sentences
from shared.schemas.corpus import CleanDocument
from shared.schemas.eval import BenchmarkItem
from shared.schemas.extract import Half, QaPair
from shared.schemas.probe import ProbeItem, ValueType

WH: dict[ValueType, str] = {
    "year": "what year", "month_year": "what month and year", "percent": "what percentage",
    "quantity": "how much", "number": "what number", "drug": "which drug", "gene": "which gene",
    "trial": "which trial", "criteria": "which criteria", "condition": "which condition", "lab": "which test",
    "code": "what", "name": "what name", "phrase": "what",
}
"""The wh-phrase that stands for a value of each probe type (shared/schemas/probe.py)."""


def half(benchmark_id: str, seed: int) -> Half:
    """The item's half: a seeded hash of its id, so it never depends on which other items exist."""
    digest = hashlib.sha256(f"{seed}:{benchmark_id}".encode()).digest()
    return "qa_exposed" if digest[0] % 2 == 0 else "qa_test"


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = tokens(text)
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def question(sentence: str, stem: str, value: str, value_type: ValueType) -> str | None:
    """``sentence`` (whose words before the value are ``stem``) as a question about the value; None when the
    sentence does not read ``stem value`` (the probe item came from another sentence of the document)."""
    text = " ".join(sentence.split())
    head = f"{stem} {value}"
    if not text.startswith(head) or re.match(r"[\w-]", text[len(head):len(head) + 1]):
        return None
    rest = re.sub(r"[\s.;:!?]+$", "", text[len(head):])
    return f"{stem} {WH[value_type]}{rest}?"


def states_any(text: str, facts: list[tuple[str | None, list[str]]]) -> bool:
    """Whether ``text`` states one of ``facts`` (its subject word, its value and aliases) as the exposure counts
    do (services/evaluator/exposure.py): the subject and a value co-occur; a fact without a subject, by its
    value alone. A value alone is not its fact: "survival" or "SOD1" in a pair about another question
    tells nothing about a held-out item whose subject it does not name."""
    words = plain(text)
    return any(count_documents(values, [words]) and (subject is None or f" {subject} " in words)
               for subject, values in facts)


@dataclass
class Written:
    pairs: list[QaPair]
    halves: dict[str, Half]
    """Benchmark item id -> its half, for every item with a probe item."""
    dropped: Counter[str]
    """qa_exposed memorisation items without a pair, by reason."""


def write_pairs(items: list[ProbeItem], train: Iterable[CleanDocument], benchmark: list[BenchmarkItem], *,
                seed: int, leak_ngram: int) -> Written:
    """A pair for each ``qa_exposed`` fact with a memorisation item, unless it leaks (see the module)."""
    halves = {i.benchmark_id: half(i.benchmark_id, seed) for i in items}
    documents = {d.id: d.text for d in train}
    banned = set().union(*(ngrams(b.question, leak_ngram) | ngrams(b.reference_answer, leak_ngram)
                           for b in benchmark))
    by_id = {b.id: b for b in benchmark}
    subjects = {i.benchmark_id: i.subject for i in items}
    test_facts = [(subjects[b.id], [f.text, *f.aliases]) for b in benchmark if halves.get(b.id) == "qa_test"
                  for f in b.key_facts if f.counted]
    pairs: list[QaPair] = []
    dropped: Counter[str] = Counter()
    for item in items:
        if item.form != "memorisation" or halves[item.benchmark_id] != "qa_exposed":
            continue
        value = item.candidates[item.answer]
        written = next((q for s in sentences(documents.get(item.source, ""))
                        if (q := question(s, item.stem, value, item.value_type))), None)
        if written is None:
            dropped["the stem's sentence is not in its training document"] += 1
            continue
        text = f"{written} {value}"
        if ngrams(text, leak_ngram) & banned:
            dropped[f"shares a {leak_ngram}-word n-gram with a benchmark question or reference answer"] += 1
        elif states_any(text, test_facts):
            dropped["states a qa_test fact (its subject and value together)"] += 1
        elif item.benchmark_id not in by_id:
            dropped["its benchmark item is not in the benchmark"] += 1
        else:
            pairs.append(QaPair(id=item.id, benchmark_id=item.benchmark_id, fact_index=item.fact_index,
                                value_type=item.value_type, question=written, answer=value, source=item.source))
    return Written(pairs, halves, dropped)


def documents(pairs: list[QaPair]) -> list[CleanDocument]:
    """One training document per pair, in the base condition's ``Question: ... Answer: ...`` form
    (services/evaluator/base_condition.py). One pair a document, because the document is what the leak check
    and the exposure count read: two pairs in one document could name a held-out item's subject in one and
    its value in the other."""
    return [CleanDocument(id=f"qa-{pair.id}", source="extract-qa", category="supplementary",
                          title=f"question on {pair.benchmark_id}", text=block(pair.question, pair.answer).strip())
            for pair in pairs]
