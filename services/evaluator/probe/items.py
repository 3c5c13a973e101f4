"""Cloze items from the benchmark's key facts, cut from the corpus by general rules (docs/probe.md).

For each counted key fact: a *memorisation* stem (the words before the fact in a training sentence that
states it) and a *generalisation* stem (the words before it in the benchmark's reference answer, else in
a validation sentence). The candidates are the true value and distractors of the value's type drawn
from the training split: the type comes from the value's shape (a year, a month and year, a percentage,
a number with a unit, a number), from the typed entity list the scorer uses (drugs, genes, trials,
criteria, conditions, lab tests), else from its letters (a code such as ``ALSFRS-R``, a capitalised name,
a phrase of n lower-case words). No item is written by hand, and the same corpus, benchmark and seed give
the same items.
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from services.evaluator.exposure import count_documents, fact_exposure, plain, question_subject
from services.evaluator.scoring.entities import ENTITIES_FILE
from services.evaluator.scoring.evidence import sentences
from services.evaluator.scoring.normalize import STOPWORDS, normalize
from shared.schemas.corpus import CleanDocument
from shared.schemas.eval import BenchmarkItem, KeyFact
from shared.schemas.probe import ProbeForm, ProbeItem, ValueType

MIN_STEM_WORDS = 3
"""A stem needs some words to condition on: a value at the start of its sentence is not cut there."""
WORDING_WORDS = 6
"""Words of the stem's end checked, with the value, against the training text (``wording_in_train``)."""

_YEAR = r"(?:1[89]\d\d|20\d\d)"
_MONTHS = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_NUMBER = r"\d+(?:[.,]\d+)?"
_RANGE = rf"{_NUMBER}(?:\s?[-\u2013]\s?{_NUMBER}|\s(?:of|to)\s{_NUMBER})?"
# Shapes in the order they are tried; each pattern finds values of its type in the corpus.
SHAPES: dict[str, str] = {
    "year": rf"{_YEAR}",
    "month_year": rf"{_MONTHS} {_YEAR}",
    "percent": rf"{_NUMBER}\s?%",
    "number": rf"{_NUMBER}",
}
_QUANTITY = re.compile(rf"({_RANGE})\s+([A-Za-z].*)")
_CODE = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
_CODE_IN_TEXT = r"[A-Za-z0-9]*[A-Z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*"
_WORD = re.compile(r"[a-z][a-z-]*[a-z]")


def _is_code(value: str) -> bool:
    """One token with a digit or two capitals: SOD1, C9orf72, TDP-43, ALSFRS-R."""
    return bool(_CODE.fullmatch(value)) and (any(c.isdigit() for c in value) or sum(c.isupper() for c in value) >= 2)


def typed_vocabulary(path: Path = ENTITIES_FILE) -> dict[str, str]:
    """Every name of the scorer's entity list (lower-cased, as written) -> its kind (``[drug]``...)."""
    kinds: dict[str, str] = {}
    kind = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            kind = line[1:-1]
        elif line and not line.startswith("#") and kind:
            kinds[line.partition("=")[0].strip().lower()] = kind
    return kinds


def whole(phrase: str) -> re.Pattern[str]:
    """``phrase`` as whole words, any case."""
    return re.compile(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", re.IGNORECASE)


@dataclass(frozen=True)
class Cut:
    """Where a stem was cut: the words before the value, the value as written there, and the source."""

    stem: str
    value: str
    source: str


def cut(sentence: str, phrases: list[str], source: str) -> Cut | None:
    """The first occurrence of any phrase with at least ``MIN_STEM_WORDS`` words before it."""
    found = sorted((m.start(), m.end()) for p in phrases for m in whole(p).finditer(sentence))
    for start, end in found:
        # The delimiter is a space: a value glued to what precedes it ("(1995") cannot be cut there.
        if not sentence[start - 1].isspace():
            continue
        stem = " ".join(sentence[:start].split())
        if len(re.findall(r"\w+", stem)) >= MIN_STEM_WORDS:
            return Cut(stem, sentence[start:end], source)
    return None


def words(text: str) -> str:
    """Lower-cased words separated by single spaces and padded: verbatim wording, spelling not normalised."""
    return " " + " ".join(re.findall(r"\w+", text.lower())) + " "


class Sentences:
    """Sentences with their document ids, searchable for a phrase in one pass over their joined text."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs
        self.lowered = "\n".join(s.lower() for _, s in pairs)
        self.starts = list(accumulate((len(s) + 1 for _, s in pairs), initial=0))

    def containing(self, phrases: list[str]) -> list[int]:
        """Indices, in order, of the sentences that contain any phrase (any case, as a substring)."""
        found = set()
        for phrase in {p.lower() for p in phrases}:
            at = self.lowered.find(phrase)
            while at >= 0:
                found.add(bisect_right(self.starts, at) - 1)
                at = self.lowered.find(phrase, at + 1)
        return sorted(found)


class Corpus:
    """The training split's sentences and the value pools distractors are drawn from."""

    def __init__(self, train: Iterable[CleanDocument], validation: Iterable[CleanDocument]):
        self.train = [(d.id, d.text) for d in train]
        self.validation = [(d.id, d.text) for d in validation]
        self.train_plain = [plain(text) for _, text in self.train]
        self.validation_plain = [plain(text) for _, text in self.validation]
        self.train_sentences = Sentences([(doc_id, s) for doc_id, text in self.train for s in sentences(text)])
        self.validation_sentences = Sentences([(doc_id, s) for doc_id, text in self.validation
                                               for s in sentences(text)])
        self.text = "\n".join(text for _, text in self.train)
        self.words_text = "\n".join(words(text) for _, text in self.train)
        self.vocabulary = typed_vocabulary()
        self._pools: dict[tuple, list[tuple[str, str]]] = {}

    @staticmethod
    def find(values: list[str], pool: Sentences, subject: str | None) -> Cut | None:
        """The first sentence of ``pool`` that states a value after enough words, preferring sentences
        that also name the subject."""
        hits = [pool.pairs[i] for i in pool.containing(values)]
        if subject:
            hits.sort(key=lambda hit: f" {subject} " not in plain(hit[1]))
        for doc_id, s in hits:
            if found := cut(s, values, doc_id):
                return found
        return None

    def matches(self, pattern: str, flags: int = 0) -> list[str]:
        """Distinct values a pattern finds in the training text, as first written, in sorted order."""
        seen: dict[str, str] = {}
        for m in re.finditer(rf"(?<![\w.-])(?:{pattern})(?![\w-]|\.\d)", self.text, flags):
            seen.setdefault(m.group(0).lower(), m.group(0))
        return sorted(seen.values())

    def phrases(self, n: int, capitalised: bool) -> list[str]:
        """Word n-grams that occur at least twice in the training sentences: lower-case words whose first
        and last are not stopwords, or (``capitalised``) capitalised words not opening a sentence."""
        counts: Counter[str] = Counter()
        for _, s in self.train_sentences.pairs:
            words = [w.strip(",;:.()[]\"'") for w in s.split()]
            for i in range(len(words) - n + 1):
                gram = words[i:i + n]
                if capitalised:
                    ok = i > 0 and all(re.fullmatch(r"[A-Z][a-z]+", w) for w in gram)
                else:
                    ok = (gram[0] not in STOPWORDS and gram[-1] not in STOPWORDS
                          and all(_WORD.fullmatch(w) for w in gram))
                if ok:
                    counts[" ".join(gram)] += 1
        return sorted(g for g, c in counts.items() if c >= 2)

    def pool(self, value: str, value_type: ValueType) -> list[tuple[str, str]]:
        """Values of ``value_type`` found in the training split (for a quantity: the same unit; for a name
        or phrase: as many words), each with its normalised form; computed once per kind of value."""
        if value_type == "quantity":
            key: tuple = (value_type, _QUANTITY.fullmatch(value).group(2))
        elif value_type in ("name", "phrase"):
            key = (value_type, len(value.split()))
        else:
            key = (value_type,)
        if key not in self._pools:
            distinct = {v.lower(): v for v in self._values(key)}.values()
            self._pools[key] = [(v, normalize(v)) for v in distinct]
        return self._pools[key]

    def _values(self, key: tuple) -> list[str]:
        value_type = key[0]
        if value_type in SHAPES:
            return self.matches(SHAPES[value_type])
        if value_type == "quantity":
            unit = key[1]
            found = self.matches(rf"{_RANGE}\s+{re.escape(unit)}")
            # Few values with this unit: other numbers of the corpus, written with the value's unit.
            return found if len(found) > 10 else sorted({*found, *(f"{n} {unit}" for n in self.matches(_NUMBER))})
        if value_type == "code":
            return [c for c in self.matches(_CODE_IN_TEXT) if _is_code(c)]
        if value_type in ("name", "phrase"):
            return self.phrases(key[1], capitalised=value_type == "name")
        names = sorted((n for n, kind in self.vocabulary.items() if kind == value_type), key=len, reverse=True)
        return self.matches("|".join(re.escape(n) for n in names), re.IGNORECASE) if names else []


def value_types(value: str, vocabulary: dict[str, str]) -> list[ValueType]:
    """The value's types, most specific first: its shape, its entity kind, else its letters."""
    types: list[ValueType] = [t for t, pattern in SHAPES.items() if re.fullmatch(pattern, value)]
    if not types and _QUANTITY.fullmatch(value):
        types.append("quantity")
    if value.lower() in vocabulary:
        types.append(vocabulary[value.lower()])
    if _is_code(value):
        types.append("code")
    if all(re.fullmatch(r"[A-Z][A-Za-z]+", w) for w in value.split()):
        types.append("name")
    return [*types, "phrase"]


def distractors(corpus: Corpus, value: str, aliases: list[str], k: int,
                rng: random.Random) -> tuple[ValueType, list[str]]:
    """``k`` corpus values of the value's most specific type that has enough of them, none equal to the
    value or an alias."""
    true = {normalize(v) for v in (value, *aliases)}
    for value_type in value_types(value, corpus.vocabulary):
        unique = [c for c, norm in corpus.pool(value, value_type) if norm not in true]
        if len(unique) >= k:
            return value_type, rng.sample(unique, k)
    raise ValueError(f"no type of {value!r} has {k} distractors in the corpus")


def fact_items(corpus: Corpus, item: BenchmarkItem, index: int, fact: KeyFact, subject: str | None, *, k: int,
               seed: int) -> list[ProbeItem]:
    """The fact's memorisation and generalisation items (each when a stem can be cut)."""
    values = [fact.text, *fact.aliases]
    memorised = corpus.find(values, corpus.train_sentences, subject)
    answer = Sentences([("reference_answer", s) for s in sentences(item.reference_answer)])
    reworded = corpus.find(values, answer, subject) or corpus.find(values, corpus.validation_sentences, subject)
    cuts: list[tuple[ProbeForm, Cut]] = [(f, c) for f, c in (("memorisation", memorised),
                                                             ("generalisation", reworded)) if c]
    if not cuts:
        return []
    in_train = count_documents(values, corpus.train_plain) > 0
    # Without a subject in the training split, nothing co-occurs with it: exposure 0.
    exposure = fact_exposure(fact, corpus.train_plain if subject else [], corpus.validation_plain if subject else [],
                             subject)
    out = []
    for form, where in cuts:
        rng = random.Random(f"{seed}:{item.id}:{index}:{form}")
        value_type, others = distractors(corpus, where.value, values, k, rng)
        candidates = [where.value, *others]
        order = list(range(len(candidates)))
        rng.shuffle(order)
        tail = " ".join(where.stem.split()[-WORDING_WORDS:])
        out.append(ProbeItem(
            id=f"{item.id}.{index}.{form[:3]}", benchmark_id=item.id, fact_index=index, fact=fact.text, form=form,
            stem=where.stem, candidates=[candidates[i] for i in order], answer=order.index(0),
            value_type=value_type, source=where.source, subject=subject, in_train=in_train, train_docs=exposure.train_docs,
            validation_docs=exposure.validation_docs, bucket=exposure.bucket,
            wording_in_train=words(f"{tail} {where.value}") in corpus.words_text,
        ))
    return out


@dataclass
class Built:
    items: list[ProbeItem]
    skipped: Counter[str]
    """Key facts without items, by reason."""


def build_items(benchmark: list[BenchmarkItem], corpus: Corpus, *, k: int, seed: int) -> Built:
    """Items for every counted, affirmed key fact; the others are counted by reason, never dropped silently."""
    items: list[ProbeItem] = []
    skipped: Counter[str] = Counter()
    for item in benchmark:
        subject = question_subject(item.question, corpus.train_plain, corpus.vocabulary)
        for index, fact in enumerate(item.key_facts):
            if not fact.counted:
                skipped["not counted (repeats the question)"] += 1
            elif fact.polarity == "deny":
                skipped["denied fact (its words are not its value)"] += 1
            elif made := fact_items(corpus, item, index, fact, subject, k=k, seed=seed):
                items += made
            else:
                skipped["no stem: the value never follows enough words"] += 1
    return Built(items, skipped)
