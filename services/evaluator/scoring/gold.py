"""Per-item gold evidence for retrieval: the corpus documents that state the item's key facts (issue 18).

No one has labelled which documents answer each question, so gold evidence is *derived*, and the
rule is stated here and in docs/evaluation.md:

- a document states a key fact when the fact scorer finds the fact (or an alias) in one of its
  sentences without polarity or subject checks (``check=False``, as retrieval recall reads chunks),
  using its lexical methods only (exact, numeric, tokens, fuzzy; no embedding similarity), among the
  sentences that hold at least half of the fact's IDF-weighted concepts;
- a document is gold evidence for the item when it states at least half (rounded up) of the item's
  counted key facts, and, when the question names entities (a drug, a gene, a trial), mentions one
  of them somewhere: "1995" alone does not make a document about riluzole's approval;
- items marked ``answerable=false`` have no gold evidence.

Documents are listed by the number of key facts they state, then by id. The result is saved with
the score run (``gold_evidence.jsonl``) so every relevance judgement can be inspected.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from services.evaluator.scoring.entities import Entities
from services.evaluator.scoring.evidence import SentencePool, concepts
from services.evaluator.scoring.facts import FactScorer
from services.evaluator.scoring.normalize import normalize
from shared.schemas.eval import BenchmarkItem, GoldEvidence

# Sentences compared with each key fact; enough for a fact that a corpus repeats in many documents.
CANDIDATES = 400
MIN_SHARE = 0.5


class GoldFinder:
    def __init__(self, corpus: SentencePool, facts: FactScorer, entities: Entities):
        self.corpus, self.facts, self.entities = corpus, facts, entities
        self._doc_entities: dict[str, set[str]] = {}
        self._doc_sentences: dict[str, list[int]] = defaultdict(list)
        for i, s in enumerate(corpus.items):
            if s.document is not None:
                self._doc_sentences[s.document].append(i)

    def _entities(self, document: str) -> set[str]:
        if document not in self._doc_entities:
            self._doc_entities[document] = {m.entity for i in self._doc_sentences[document]
                                            for m in self.entities.mentions(self.corpus.items[i].norm)}
        return self._doc_entities[document]

    def find(self, item: BenchmarkItem) -> GoldEvidence:
        counted = [(i, f) for i, f in enumerate(item.key_facts) if f.counted]
        if not item.answerable or not counted:
            return GoldEvidence(id=item.id, documents=[], facts={}, needed=0)
        needed = math.ceil(len(counted) / 2)
        subjects = {m.entity for m in self.entities.mentions(normalize(item.question))}
        candidates: dict[str, set[int]] = defaultdict(set)
        for _, fact in counted:
            for text in [fact.text, *fact.aliases]:
                for idx, _share in self.corpus.candidates(concepts(normalize(text)), CANDIDATES, MIN_SHARE):
                    if (doc := self.corpus.items[idx].document) is not None:
                        candidates[doc].add(idx)
        stated: dict[str, list[int]] = {}
        for doc, idxs in candidates.items():
            if subjects and not subjects & self._entities(doc):
                continue
            text = " ".join(self.corpus.items[i].text for i in sorted(idxs))
            verdicts = self.facts.judge(item.question, [f for _, f in counted], text, check=False)
            found = [i for (i, _), v in zip(counted, verdicts) if v.verdict == "supported"]
            if len(found) >= needed:
                stated[doc] = found
        documents = sorted(stated, key=lambda d: (-len(stated[d]), d))
        return GoldEvidence(id=item.id, documents=documents, facts={d: stated[d] for d in documents}, needed=needed)

    def find_all(self, items: Sequence[BenchmarkItem]) -> dict[str, GoldEvidence]:
        return {item.id: self.find(item) for item in items}
