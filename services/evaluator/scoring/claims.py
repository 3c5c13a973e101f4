"""Atomic claims of a response and their verdicts: supported, contradicted or unverifiable (issue 18).

FActScore-style claim precision without an entailment model (none with weights ships offline here):

**Splitting** (``split_claims``). Citation markers and an ``Answer:`` prefix are removed, the text is
cut into sentences (``evidence.sentences``), and a sentence is cut further only where that is safe
without a parser: at ``;``, at ``, but`` / ``, whereas`` / ``, while`` / ``, although``, and at
``, and`` / ``, or`` before a new subject (a pronoun, an article or a capitalised word), each time
only when both sides keep at least four words. A list of three or more short items (five words or
fewer) after *include(s), including, such as, are, were, comprise* becomes one claim per item
("Side effects include nausea, dizziness and rash" -> three claims). Questions, refusals and
fragments (no predicate, fewer than three words or two content words) are no claims; a sentence
repeated in one response is one claim, and so is its repeat cut short by the token limit.

**Judging** (``ClaimJudge``). For each evidence pool in priority order (the reference answer, then
the corpus; or the retrieved chunks), the sentences sharing the most IDF-weighted concepts with the
claim are the candidates, taken in order of MiniLM cosine with the claim; the first that decides
gives the verdict, and the first pool that decides wins. A claim no pool decides is *unverifiable*.
A candidate decides when

- it contains the claim word for word (*supported*, ``exact``; checked before anything is embedded);
- the fact scorer, given the claim as the key fact and the sentence as the response, finds it with
  every one of the claim's concepts in one clause (token coverage 1; exact, tokens or numeric, not
  fuzzy: *supported*), provided the sentence is on the claim's topic (cosine at
  least ``claim_topic_similarity``);
- its cosine reaches ``claim_support_similarity``, it holds ``claim_support_overlap`` of the
  claim's concepts and writes every number and named entity of the claim, and the fact scorer does
  not find the claim contradicted there (*supported*, ``similarity``: MiniLM hardly tells
  "increases" from "reduces");
- being one of the two best-matching candidates and on topic, the fact scorer finds the claim denied,
  stated with the opposite direction, or stated with another year, dose or count (*contradicted*;
  "another value" only when a number of the claim is missing from the sentence, as the fact scorer
  reads a claim's several numbers as rivals of each other); or it shares an entity with the claim
  but, for a kind the claim names, names only others: P525L in FUS, not SOD1 (*contradicted*,
  ``entity``).

A sentence that holds a direction word of the claim and its opposite ("reducing glutamate release
rather than enhancing uptake") never supports it by words or similarity: a bag of stems cannot tell
which one the claim's words go with.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from services.evaluator.scoring.entities import Entities
from services.evaluator.scoring.evidence import Sentence, SentencePool, concepts, sentences
from services.evaluator.scoring.facts import Embedder, FactScorer
from services.evaluator.scoring.hedging import hedging
from services.evaluator.scoring.normalize import OPPOSITES, normalize, words
from services.evaluator.settings import EvalConfig
from shared.schemas.eval import ClaimJudgement, KeyFact

# Citation markers: [6], [1, 2], [2-4], and "(source: sample-pmc-0001-abstract)" as the prompt writes it.
CITATION = re.compile(r"\[\s*(\d+(?:\s*[,\u2013-]\s*\d+)*)\s*\]|\(?\bsources?\s*:\s*([\w.:/-]*\w)\)?", re.IGNORECASE)
_ANSWER_PREFIX = re.compile(r"^\s*(?:answer|a)\s*:\s*", re.IGNORECASE)
# A bullet, or the yes/no that opens a yes/no answer (scored as the item's exact answer, not as a claim).
_LEAD = re.compile(r"^(?:[-*\u2022]|\d{1,2}[.)]|(?:yes|no)\s*[,;:.])\s+", re.IGNORECASE)
_CLAUSE_CUT = re.compile(
    r";\s+|,\s+(?:but|whereas|while|although|though)\s+"
    r"|,\s+(?:and|or)\s+(?=(?:it|they|this|these|those|the|its|their|he|she|there|we|patients|people|a|an)\b|[A-Z])"
)
_LIST = re.compile(r"^(?P<head>.*?\b(?:include|includes|included|including|such as|are|were|comprise|comprises)\b:?)"
                   r"\s+(?P<items>.+)$", re.IGNORECASE)
_LIST_SEP = re.compile(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+")
_MIN_SIDE_WORDS = 4
_MAX_ITEM_WORDS = 5
_CONTRADICTING_CANDIDATES = 2
# Fuzzy matching is not among them: rapidfuzz's partial ratio aligns the shorter string inside the longer,
# so a short clause of the evidence ("drug", "the split-hand sign") matches inside a whole claim at 100.
_WORD_METHODS = ("exact", "tokens", "numeric")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_VERBS = frozenset({
    "is", "are", "was", "were", "be", "been", "being", "am", "has", "have", "had", "do", "does", "did",
    "can", "could", "may", "might", "will", "would", "should", "must", "shall", "cause", "develop",
    "affect", "include", "require", "occur", "lead", "involve", "show", "use", "reduce", "increase",
    "slow", "block", "bind", "target", "inhibit", "encode", "remain", "appear", "need", "help", "prolong",
    "improve", "protect", "damage", "degenerate", "die", "lose", "spread", "begin", "start", "present",
    "carry", "mean", "receive", "take", "give", "make", "treat"
})


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;:])", r"\1", CITATION.sub("", text)).strip()


def _cut_clauses(sentence: str) -> list[str]:
    pieces, start = [], 0
    for m in _CLAUSE_CUT.finditer(sentence):
        left, right = sentence[start:m.start()], sentence[m.end():]
        if len(left.split()) >= _MIN_SIDE_WORDS and len(right.split()) >= _MIN_SIDE_WORDS:
            pieces.append(left)
            start = m.end()
    pieces.append(sentence[start:])
    return [p.strip(" ,;") for p in pieces]


def _distribute_list(clause: str) -> list[str]:
    m = _LIST.match(clause.rstrip(" ."))
    if not m:
        return [clause]
    items = [i.strip() for i in _LIST_SEP.split(m.group("items")) if i.strip()]
    if len(items) < 3 or any(len(i.split()) > _MAX_ITEM_WORDS for i in items):
        return [clause]
    return [f"{m.group('head')} {item}" for item in items]


def _phrase(normalized: str) -> str:
    return " " + " ".join(words(normalized)) + " "


def _mixed_direction(claim: frozenset[str], evidence: frozenset[str]) -> bool:
    """The evidence holds a direction word of the claim and its opposite ("reducing release rather than
    enhancing uptake"): a bag of stems cannot tell which one the claim's words go with."""
    return any(c in evidence and OPPOSITES.get(c, frozenset()) & evidence for c in claim)


_DETERMINERS = frozenset({"a", "an", "the", "this", "that", "these", "those", "its", "their", "his", "her", "our"})


def _predicate(text: str) -> bool:
    """Does the text have a verb? Without a tagger: an auxiliary, copula or modal, a common base-form verb of
    the domain, or a word inflected like a verb (-ed, -ing, -s; not -ss, -us, -is, -ous). A plural noun
    passes too; "the trial, and the ALS" and "a feeding tube." (a small model's noun chains) do not."""
    previous = ""
    for word in re.findall(r"[a-z]+", text.lower()):
        # After a determiner an -ing/-ed word qualifies a noun ("a feeding tube", "the affected limb").
        inflected = re.search(r"(?:ed|ing|[^sui]s)$", word) and not word.endswith("ous")
        if word in _VERBS or (len(word) > 3 and inflected and previous not in _DETERMINERS):
            return True
        previous = word
    return False


def is_claim(text: str) -> bool:
    """A question, a refusal or a fragment (no predicate, fewer than three words or two content words)
    states nothing that can be checked."""
    if text.rstrip().endswith("?") or hedging(text)["refusal"] or not _predicate(text):
        return False
    norm = normalize(text)
    return len(words(norm)) >= 3 and len(concepts(norm)) >= 2


def split_claims(response: str) -> list[str]:
    """The response's atomic claims in order (see the module docstring for the rules)."""
    out: dict[str, str] = {}
    for sentence in sentences(_ANSWER_PREFIX.sub("", response)):
        for clause in _cut_clauses(strip_citations(_LEAD.sub("", sentence))):
            for claim in _distribute_list(clause):
                claim = claim.strip(" ,;:")
                key = " ".join(re.findall(r"\w+", claim.lower()))
                # a repeat, or a repeat cut short by the token limit, is not a new claim
                if is_claim(claim) and not any(seen.startswith(key) for seen in out):
                    out[key] = claim
    return list(out.values())


@dataclass(frozen=True)
class _Decision:
    verdict: str
    rule: str
    sentence: Sentence
    similarity: float | None

    def judgement(self, claim: str) -> ClaimJudgement:
        sim = None if self.similarity is None else round(self.similarity, 4)
        return ClaimJudgement(text=claim, verdict=self.verdict, rule=self.rule, source=self.sentence.source,
                              evidence=self.sentence.text, similarity=sim)


class ClaimJudge:
    def __init__(self, config: EvalConfig, entities: Entities, embedder: Embedder | None):
        self.config, self.entities = config, entities
        self.embedder = embedder if config.use_embeddings else None
        # The fact scorer's rules, without its own embedding fallback (similarity is this module's rule) and
        # without the non-answer check (a claim is one statement cut from a response already found to be one).
        rules = config.model_copy(update={"use_embeddings": False, "use_acceptability": False})
        self.facts = FactScorer(rules, entities)
        # Support by words needs every concept of the claim in one clause: a key fact is a short phrase,
        # a claim a whole statement, and two thirds of "it is a long-term treatment for ALS" is anything.
        self.strict = FactScorer(rules.model_copy(update={"token_coverage": 1.0}), entities)

    def _candidates(self, claim: str, pool: SentencePool) -> list[tuple[Sentence, float]]:
        found = pool.candidates(concepts(normalize(claim)), self.config.claim_candidates,
                                self.config.claim_min_overlap)
        return [(pool.items[i], share) for i, share in found]

    def prefetch(self, cases: Sequence[tuple[Sequence[str], Sequence[SentencePool]]], texts: Sequence[str] = ()
                 ) -> None:
        """Embed every claim and candidate sentence of these cases, and ``texts``, in large batches (see
        FactScorer.prefetch): one batch per thousand texts is far cheaper than one per claim."""
        if self.embedder is None:
            return
        texts = list(texts)
        for claims, pools in cases:
            for claim in claims:
                written = _phrase(normalize(claim))
                for pool in pools:
                    found = self._candidates(claim, pool)
                    if any(written in _phrase(s.norm) for s, _ in found):
                        break  # decided word for word (``_decide``): nothing to embed from here on
                    texts += [claim, *(s.text for s, _ in found)] if found else []
        texts = list(dict.fromkeys(texts))
        for start in range(0, len(texts), 1024):
            self.embedder.encode(texts[start:start + 1024])

    def judge(self, claims: Sequence[str], pools: Sequence[SentencePool]) -> list[ClaimJudgement]:
        """One judgement per claim, against the pools in priority order."""
        out = []
        for claim in claims:
            decision = None
            for pool in pools:
                decision = self._decide(claim, pool)
                if decision:
                    break
            out.append(decision.judgement(claim) if decision else ClaimJudgement(text=claim, verdict="unverifiable"))
        return out

    def _decide(self, claim: str, pool: SentencePool) -> _Decision | None:
        found = self._candidates(claim, pool)
        if not found:
            return None
        claim_norm = normalize(claim)
        written = _phrase(claim_norm)
        for sentence, _ in found:
            if written in _phrase(sentence.norm):
                return _Decision("supported", "exact", sentence, None)
        sims: list[float | None] = [None] * len(found)
        if self.embedder is not None:
            vectors = self.embedder.encode([claim, *(s.text for s, _ in found)])
            sims = [float(v) for v in vectors[1:] @ vectors[0]]
        order = sorted(range(len(found)), key=lambda i: -(sims[i] if sims[i] is not None else found[i][1]))
        fact = [KeyFact(text=claim)]
        for rank, i in enumerate(order):
            sentence, share = found[i]
            sim = sims[i]
            on_topic = sim is None or sim >= self.config.claim_topic_similarity
            match = self.facts.judge(claim, fact, sentence.text)[0]
            if not _mixed_direction(concepts(claim_norm), sentence.concepts):
                strict = self.strict.judge(claim, fact, sentence.text)[0] if match.verdict == "supported" else None
                if on_topic and strict and strict.verdict == "supported" and strict.method in _WORD_METHODS:
                    return _Decision("supported", strict.method, sentence, sim)
                if (sim is not None and sim >= self.config.claim_support_similarity
                        and match.verdict != "contradicted" and share >= self.config.claim_support_overlap
                        and self._written(claim_norm, sentence.norm)):
                    return _Decision("supported", "similarity", sentence, sim)
            if rank < _CONTRADICTING_CANDIDATES and on_topic:
                # "another value" is a claim's number missing from the sentence, not one of its own numbers
                # read as a rival of another ("three doses at 14-day intervals, then every 28 days").
                other_value = match.rejected == "other_value" and set(_NUMBER.findall(claim_norm)) <= set(
                    _NUMBER.findall(sentence.norm))
                if match.verdict == "contradicted" and not other_value:
                    return _Decision("contradicted", match.rejected, sentence, sim)
                if self._other_entity(claim_norm, sentence.norm):
                    return _Decision("contradicted", "entity", sentence, sim)
        return None

    def _written(self, claim_norm: str, evidence_norm: str) -> bool:
        """Every number and named entity of the claim is in the evidence: similarity never stands in for them."""
        if not set(_NUMBER.findall(claim_norm)) <= set(_NUMBER.findall(evidence_norm)):
            return False
        mine = {m.entity for m in self.entities.mentions(claim_norm)}
        return mine <= {m.entity for m in self.entities.mentions(evidence_norm)}

    def _other_entity(self, claim_norm: str, evidence_norm: str) -> bool:
        """The evidence shares an entity with the claim but, for a kind the claim names, names only others."""
        mine = {m.entity: m.kind for m in self.entities.mentions(claim_norm)}
        theirs = {m.entity: m.kind for m in self.entities.mentions(evidence_norm)}
        if not mine.keys() & theirs.keys():
            return False
        for kind in set(mine.values()):
            a = {e for e, k in mine.items() if k == kind}
            b = {e for e, k in theirs.items() if k == kind}
            if b and not a & b:
                return True
        return False


def shares(judgements: Sequence[ClaimJudgement]) -> dict[str, float] | None:
    """Per response: the share of its claims in each verdict, and the hallucination share
    (contradicted + unverifiable); None for a response without claims."""
    if not judgements:
        return None
    n = len(judgements)
    counts = {v: sum(j.verdict == v for j in judgements) / n for v in ("supported", "contradicted", "unverifiable")}
    return {**counts, "hallucinated": counts["contradicted"] + counts["unverifiable"]}

