"""RAG faithfulness (RAGAS-style) of one response that carries its retrieved chunks (issue 18).

- **Faithfulness**: the response's claims (``claims.split_claims``) judged by ``ClaimJudge`` against
  the sentences of the retrieved chunks only: the share the context supports.
- **Citations**: ``[n]`` markers (``[1, 2]``, ``[2-4]``), ``source: <id>`` as the §9.3 prompt
  attributes chunks, and document ids or retrieved titles written verbatim. A citation is correct
  when it names a chunk the generator was given (``[6]`` of five is not) and that chunk alone
  supports every claim of the sentence that cites it.
- **Answer relevancy**: MiniLM cosine of the answer and the question (RAGAS generates questions from
  the answer with an LLM and compares those; with no generator in the scorer, the direct cosine).
- **Context precision** and **reciprocal rank** against the item's gold evidence documents
  (``scoring/gold.py``): a retrieved chunk is relevant when its source document is gold evidence;
  context precision is the mean of precision@k over the ranks k of relevant chunks (0 when none is
  relevant), as RAGAS defines it; undefined (None) for an item without gold evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from services.evaluator.scoring.claims import CITATION, ClaimJudge, split_claims
from services.evaluator.scoring.evidence import Sentence, SentencePool, sentences
from shared.schemas.eval import Citation, Faithfulness, GoldEvidence, RetrievedChunk

_TOKEN = re.compile(r"[\w.:/-]*\w")
# A retrieved title is a citation only when long enough not to be an ordinary phrase.
_MIN_TITLE = 20


def _numbers(group: str) -> list[int]:
    out = []
    for part in re.split(r"\s*,\s*", group):
        bounds = [int(b) for b in re.split(r"\s*[\u2013-]\s*", part)]
        out += list(range(bounds[0], bounds[-1] + 1)) if len(bounds) == 2 and bounds[1] - bounds[0] < 20 else bounds
    return out


def find_citations(response: str, chunks: Sequence[RetrievedChunk], corpus_ids: set[str]) -> list[tuple[str, str, int | None]]:
    """(marker, citing sentence, 1-based retrieved chunk or None) for every citation, in order."""
    by_id = {}
    for n, c in enumerate(chunks, 1):
        by_id.setdefault(c.source_id, n)
    out = []
    for sentence in sentences(response):
        for m in CITATION.finditer(sentence):
            if m.group(1):
                out += [(f"[{n}]", sentence, n if 1 <= n <= len(chunks) else None) for n in _numbers(m.group(1))]
            else:
                out.append((f"source: {m.group(2)}", sentence, by_id.get(m.group(2))))
        rest = CITATION.sub(" ", sentence)
        named = set()
        for token in _TOKEN.findall(rest):
            if (token in by_id or token in corpus_ids) and token not in named:
                named.add(token)
                out.append((token, sentence, by_id.get(token)))
        lowered = rest.lower()
        for n, c in enumerate(chunks, 1):
            if len(c.title) >= _MIN_TITLE and c.title.lower() in lowered and c.title not in named:
                named.add(c.title)
                out.append((c.title, sentence, n))
    return out


def context_precision(relevant: Sequence[bool]) -> float:
    hits, total = 0, 0.0
    for k, rel in enumerate(relevant, 1):
        if rel:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


def reciprocal_rank(relevant: Sequence[bool]) -> float:
    return next((1.0 / k for k, rel in enumerate(relevant, 1) if rel), 0.0)


class FaithfulnessScorer:
    def __init__(self, judge: ClaimJudge, corpus_ids: set[str], idf: dict[str, float]):
        self.judge, self.corpus_ids, self.idf = judge, corpus_ids, idf
        self._sentences: dict[tuple[str, int, str], list[Sentence]] = {}

    def pool(self, chunks: Sequence[RetrievedChunk], first: int = 1) -> SentencePool:
        """The chunks' sentences, each marked with its chunk's number (``[first]`` onwards); a chunk is cut
        and normalised once, however many responses retrieve it."""
        items = []
        for n, c in enumerate(chunks, first):
            key = (c.chunk_id, n, c.text)
            if key not in self._sentences:
                self._sentences[key] = SentencePool.build([(c.text, f"[{n}]", c.source_id)]).items
            items += self._sentences[key]
        return SentencePool(items, self.idf)

    def cases(self, question: str, response: str, chunks: Sequence[RetrievedChunk], claims: Sequence[str]
              ) -> tuple[list[tuple[Sequence[str], list[SentencePool]]], list[str]]:
        """What ``score`` will judge and embed, for ``ClaimJudge.prefetch``."""
        cases = [(claims, [self.pool(chunks)])]
        cases += [(split_claims(sentence), [self.pool([chunks[n - 1]], n)])
                  for _, sentence, n in find_citations(response, chunks, self.corpus_ids) if n is not None]
        return cases, [question, response]

    def score(self, question: str, response: str, chunks: Sequence[RetrievedChunk], claims: Sequence[str],
              gold: GoldEvidence | None) -> Faithfulness:
        judged = self.judge.judge(claims, [self.pool(chunks)])
        citations = []
        for marker, sentence, n in find_citations(response, chunks, self.corpus_ids):
            supports = False
            if n is not None:
                own = split_claims(sentence)
                verdicts = self.judge.judge(own, [self.pool([chunks[n - 1]], n)])
                supports = bool(own) and all(v.verdict == "supported" for v in verdicts)
            citations.append(Citation(marker=marker, sentence=sentence, chunk=n, retrieved=n is not None,
                                      supports=supports))
        relevancy = None
        if self.judge.embedder is not None:
            q, a = self.judge.embedder.encode([question, response])
            relevancy = round(float(q @ a), 4)
        precision = rank = None
        if gold is not None and gold.documents:
            relevant = [c.source_id in set(gold.documents) for c in chunks]
            precision, rank = context_precision(relevant), reciprocal_rank(relevant)
        return Faithfulness(
            claims=judged,
            supported=(sum(j.verdict == "supported" for j in judged) / len(judged)) if judged else None,
            citations=citations,
            citation_correct=(sum(c.supports for c in citations) / len(citations)) if citations else None,
            answer_relevancy=relevancy,
            gold_documents=gold.documents if gold else [],
            context_precision=precision,
            reciprocal_rank=rank,
        )
