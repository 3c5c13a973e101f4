"""Score responses against the benchmark: facts (accuracy, contradictions), fabricated names and hedging per item."""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from services.evaluator import stats
from services.evaluator.inputs import load_benchmark, load_responses, match
from services.evaluator.scoring.entities import Entities, default_entities
from services.evaluator.scoring.fabrication import Lexicon, fabricated
from services.evaluator.scoring.facts import Embedder, FactScorer, judge_answer
from services.evaluator.scoring.hallucination import HallucinationScorer
from services.evaluator.scoring.hedging import aggregate, hedging
from services.evaluator.settings import EvalConfig
from shared import log as shared_log
from shared import userfiles
from shared.errors import InvalidInput
from shared.manifest import InputRef
from shared.schemas.eval import BenchmarkItem, FactMatch, ItemScore, Response, ScoreFile, TrapVerdict
from shared.store import sha256_file

log = logging.getLogger(__name__)


def corpus_documents(path: Path) -> Iterator[str]:
    """``corpus.txt`` documents (separated by blank lines), streamed."""
    lines: list[str] = []
    for line in userfiles.stream_lines(path, "corpus"):
        if line.strip():
            lines.append(line)
        elif lines:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def shown(item: BenchmarkItem, response: Response) -> list[str]:
    """What the system was given to read: the question, and a RAG prompt's chunks (ids, titles, text)."""
    return [item.question, *(part for c in response.retrieved or [] for part in (c.source_id, c.title, c.text))]


def document_names(path: Path) -> Iterator[str]:
    """Ids and titles of the corpus documents (``train.jsonl``), which ``corpus.txt`` does not carry."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                doc = json.loads(line)
                yield doc["id"]
                yield doc.get("title", "")


def trap_verdict(text: str, facts: list[FactMatch]) -> TrapVerdict:
    """A trap asks about something that does not exist (a made-up drug): declining (a refusal, as
    hedging counts it) or stating a counted key fact (for a trap, the denial) is right; anything else
    answers as if the premise were true."""
    if hedging(text)["refusal"]:
        return "declined"
    if any(f.verdict == "supported" for f in facts if f.counted):
        return "denied"
    return "answered"


def judge_item(item: BenchmarkItem, text: str, scorer: FactScorer
               ) -> tuple[list[FactMatch], FactMatch | None, float, TrapVerdict | None]:
    """Verdicts per key fact, the yes/no answer's verdict, the item's accuracy and, for a trap, its
    verdict. Accuracy is the share of the counted key facts supported, a yes/no item's exact answer
    counting as one more; a trap's is 1 when it declines or denies, else 0. A non-answer (empty, a loop,
    word salad) states nothing: every fact and the yes/no are absent."""
    facts = scorer.judge(item.question, item.key_facts, text)
    answer = judge_answer(item.expected_answer, text) if item.answer_type == "yes_no" else None
    if answer is not None and answer.verdict != "absent" and scorer.non_answer(item.question, text):
        answer = FactMatch(fact=answer.fact, present=False, verdict="absent")
    if item.trap:
        trap = trap_verdict(text, facts)
        return facts, answer, float(trap != "answered"), trap
    units = [f.present for f in facts if f.counted] + ([answer.present] if answer else [])
    if not units:
        raise InvalidInput(f"item {item.id}: no counted key fact and no yes/no answer, so no accuracy")
    return facts, answer, sum(units) / len(units), None


def is_correct(score: ItemScore) -> bool:
    """An item is correct when every counted key fact is supported, no key fact (counted or not) is
    contradicted, and a yes/no item's yes/no is the expected one: equally strict for an item of one fact
    and of five, so a bare "No." does not pass a yes/no item that also asks for a fact. The graded
    ``accuracy`` (the share of units supported) stays beside it. A trap item is correct when it declines
    or denies the false premise."""
    if score.trap is not None:
        return score.trap != "answered"
    return (all(f.verdict == "supported" for f in score.facts if f.counted)
            and not any(f.verdict == "contradicted" for f in score.facts)
            and (score.answer is None or score.answer.verdict == "supported"))


def score_responses(
    pairs: list[tuple[BenchmarkItem, Response]], scorer: FactScorer, lexicon: Lexicon,
    claims: HallucinationScorer | None = None,
) -> ScoreFile:
    """Score every pair; with ``claims``, also claim precision and (for RAG responses) faithfulness."""
    scorer.prefetch([(item.question, item.key_facts, text) for item, response in pairs
                     for text in (response.response, item.question)])
    if claims is not None:
        claims.prepare(pairs)
    items, echo = [], []
    with shared_log.progress() as bar:
        task = bar.add_task("scoring", total=len(pairs))
        for item, response in pairs:
            reason = scorer.non_answer(item.question, response.response)
            facts, answer, accuracy, trap = judge_item(item, response.response, scorer)
            items.append(ItemScore(
                id=item.id,
                category=item.category,
                facts_present=[f.present for f in facts],
                accuracy=accuracy,
                fabricated_entities=fabricated(response.response, lexicon, shown(item, response)),
                hedging=hedging(response.response),
                facts=facts,
                facts_contradicted=sum(f.verdict == "contradicted" for f in facts if f.counted),
                answer=answer,
                # a non-answer makes no claims, so none can be faithful or not to what it was shown
                **(({"claims": []} if reason else claims.score(item, response)) if claims is not None else {}),
                non_answer=reason is not None,
                non_answer_reason=reason,
                trap=trap,
            ))
            echo_facts, _, echo_accuracy, _ = judge_item(item, item.question, scorer)
            echo.append((echo_accuracy, echo_facts))
            bar.advance(task)
    summary = summarize(items, echo)
    if claims is not None:
        summary.update(claims.summary(items))
    return ScoreFile(items=items, summary=summary)


def _interval(values: list[float]) -> dict:
    return stats.bootstrap_mean(values).model_dump(mode="json")


def _traps(traps: list[ItemScore]) -> dict:
    """Trap items: how many declined, denied or answered a false premise, and the share that did not."""
    counts = Counter(s.trap for s in traps)
    return {"n": len(traps), **{v: counts[v] for v in ("declined", "denied", "answered")},
            "avoided_rate_interval": _interval([float(s.trap != "answered") for s in traps])}


def summarize(items: list[ItemScore], echo: list[tuple[float, list[FactMatch]]] | None = None) -> dict:
    """Headline figures. Rates over items carry a 95 % bootstrap interval (``services/evaluator/stats.py``);
    ``echo_baseline`` scores each question itself as its answer: what repeating the question earns."""
    by_category: dict[str, list[float]] = defaultdict(list)
    for s in items:
        by_category[s.category].append(s.accuracy)
    facts = [f for s in items for f in s.facts]
    counted = [f for f in facts if f.counted]
    # Per item, the share of its counted key facts contradicted: the unit the interval resamples.
    contradicted_share = [s.facts_contradicted / max(1, sum(f.counted for f in s.facts)) for s in items]
    hedged = [s.accuracy for s in items if s.hedging["hedged"]]
    confident = [s.accuracy for s in items if not s.hedging["hedged"]]
    summary = {
        "n_items": len(items),
        "accuracy": sum(s.accuracy for s in items) / len(items),
        "accuracy_interval": _interval([s.accuracy for s in items]),
        "accuracy_by_category": {c: sum(v) / len(v) for c, v in sorted(by_category.items())},
        "correct_rate": sum(map(is_correct, items)) / len(items),
        "correct_rate_interval": _interval([float(is_correct(s)) for s in items]),
        "facts_total": len(facts),
        "facts_counted": len(counted),
        "facts_present": sum(f.present for f in counted),
        "facts_contradicted": sum(f.verdict == "contradicted" for f in counted),
        "facts_by_verdict": dict(Counter(f.verdict for f in counted)),
        "contradicted_rate": sum(f.verdict == "contradicted" for f in counted) / max(1, len(counted)),
        "contradicted_rate_interval": _interval(contradicted_share),
        "items_with_contradiction": sum(s.facts_contradicted > 0 for s in items),
        "facts_by_method": dict(Counter(f.method for f in facts if f.present)),
        "facts_rejected": dict(Counter(f.rejected for f in facts if f.rejected)),
        "yes_no_answers": dict(Counter(s.answer.verdict for s in items if s.answer)),
        "fabrication_rate": sum(bool(s.fabricated_entities) for s in items) / len(items),
        "fabrication_rate_interval": _interval([float(bool(s.fabricated_entities)) for s in items]),
        "fabricated_entities": dict(Counter(e for s in items for e in s.fabricated_entities).most_common()),
        "hedging": aggregate([s.hedging for s in items]),
        "non_answers": sum(s.non_answer for s in items),
        "non_answers_by_reason": dict(Counter(s.non_answer_reason for s in items if s.non_answer).most_common()),
        "traps": _traps([s for s in items if s.trap]),
        "accuracy_by_hedging": {"hedged": _interval(hedged), "not_hedged": _interval(confident)},
    }
    if echo is not None:
        echo_counted = [f for _, fs in echo for f in fs if f.counted]
        summary["echo_baseline"] = {
            "accuracy": sum(a for a, _ in echo) / len(echo),
            "accuracy_interval": _interval([a for a, _ in echo]),
            "facts_present": sum(f.present for f in echo_counted),
            "facts_counted": len(echo_counted),
        }
    return summary


def build(config: EvalConfig, corpus_texts: Iterable[str], entities: Entities | None = None,
          names: Iterable[str] = ()) -> tuple[FactScorer, Lexicon]:
    """The fact scorer and the fabrication lexicon (corpus text, plus its documents' titles and ids)."""
    entities = entities or default_entities()
    return FactScorer(config, entities, Embedder()), Lexicon.build(corpus_texts, entities, names)


def build_claims(config: EvalConfig, scorer: FactScorer, documents: Iterable[tuple[str | None, str]]
                 ) -> HallucinationScorer:
    """Claim precision and faithfulness, with the fact scorer's entities and embedder; ``documents`` are
    the corpus as (id or None, text): ids make gold evidence and named citations possible."""
    return HallucinationScorer(config, scorer.entities, scorer.embedder, documents)


def clean_documents(paths: Iterable[Path]) -> Iterator[tuple[str, str]]:
    """(id, text) of the processed documents in ``train.jsonl`` / ``val.jsonl``."""
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    doc = json.loads(line)
                    yield doc["id"], doc["text"]


def score_files(config: EvalConfig, benchmark: Path, responses: Path, corpus: Path | None,
                report: Path | None = None) -> ScoreFile:
    """File mode: validate both files first, so bad input fails before any work (and before any write);
    when either has many problems, all of them are written to ``report``."""
    pairs = match(load_benchmark(benchmark, report), load_responses(responses, report))
    scorer, lexicon = build(config, corpus_documents(corpus) if corpus else ())
    if corpus is None:
        log.warning("no --corpus: fabrication is judged against the curated entity list and English only; "
                    "claims against the reference answers only")
    claims = build_claims(config, scorer, ((None, text) for text in corpus_documents(corpus)) if corpus else ())
    return score_responses(pairs, scorer, lexicon, claims)


def benchmark_input(path: Path) -> InputRef:
    """The bundled benchmark as a run input, so editing it re-runs the stages that read it."""
    return InputRef(key=f"bundled/{Path(path).name}", sha256=sha256_file(path), run="bundled")
