"""Score responses against the benchmark: facts (accuracy), fabricated names and hedging per item."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from services.evaluator.inputs import load_benchmark, load_responses, match
from services.evaluator.scoring.entities import ENTITIES_FILE, Entities, default_entities
from services.evaluator.scoring.fabrication import Lexicon, fabricated
from services.evaluator.scoring.facts import Embedder, FactScorer
from services.evaluator.scoring.hedging import aggregate, hedging
from services.evaluator.settings import EvalConfig, EvaluatorSettings
from shared import log as shared_log
from shared import runs
from shared.manifest import InputRef
from shared.runs import RunWriter
from shared.schemas.eval import SYSTEMS, BenchmarkItem, ItemScore, Response, ScoreFile
from shared.store import ArtifactStore, sha256_file

log = logging.getLogger(__name__)


def corpus_documents(path: Path) -> Iterator[str]:
    """``corpus.txt`` documents (separated by blank lines), streamed."""
    lines: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                lines.append(line)
            elif lines:
                yield "".join(lines)
                lines = []
    if lines:
        yield "".join(lines)


def score_responses(
    pairs: list[tuple[BenchmarkItem, Response]], scorer: FactScorer, lexicon: Lexicon
) -> ScoreFile:
    scorer.prefetch([(item.question, item.fact_texts, response.response) for item, response in pairs])
    items = []
    with shared_log.progress() as bar:
        task = bar.add_task("scoring", total=len(pairs))
        for item, response in pairs:
            facts = scorer.judge(item.question, item.fact_texts, response.response)
            present = [f.present for f in facts]
            items.append(ItemScore(
                id=item.id,
                category=item.category,
                facts_present=present,
                accuracy=sum(present) / len(present),
                fabricated_entities=fabricated(response.response, lexicon),
                hedging=hedging(response.response),
                facts=facts,
            ))
            bar.advance(task)
    return ScoreFile(items=items, summary=summarize(items))


def summarize(items: list[ItemScore]) -> dict:
    by_category: dict[str, list[float]] = defaultdict(list)
    for s in items:
        by_category[s.category].append(s.accuracy)
    facts = [f for s in items for f in s.facts]
    return {
        "n_items": len(items),
        "accuracy": sum(s.accuracy for s in items) / len(items),
        "accuracy_by_category": {c: sum(v) / len(v) for c, v in sorted(by_category.items())},
        "facts_total": len(facts),
        "facts_present": sum(f.present for f in facts),
        "facts_by_method": dict(Counter(f.method for f in facts if f.present)),
        "facts_rejected": dict(Counter(f.rejected for f in facts if f.rejected)),
        "fabrication_rate": sum(bool(s.fabricated_entities) for s in items) / len(items),
        "fabricated_entities": dict(Counter(e for s in items for e in s.fabricated_entities).most_common()),
        "hedging": aggregate([s.hedging for s in items]),
    }


def build(config: EvalConfig, corpus_texts: Iterable[str], entities: Entities | None = None) -> tuple[FactScorer, Lexicon]:
    entities = entities or default_entities()
    return FactScorer(config, entities, Embedder()), Lexicon.build(corpus_texts, entities)


def score_files(config: EvalConfig, benchmark: Path, responses: Path, corpus: Path | None) -> ScoreFile:
    """File mode: validate both files first, so bad input fails before any work (and before any write)."""
    pairs = match(load_benchmark(benchmark), load_responses(responses))
    scorer, lexicon = build(config, corpus_documents(corpus) if corpus else ())
    if corpus is None:
        log.warning("no --corpus: fabrication is judged against the curated entity list and English only")
    return score_responses(pairs, scorer, lexicon)


def benchmark_input(path: Path) -> InputRef:
    """The bundled benchmark as a run input, so editing it re-runs the stages that read it."""
    return InputRef(key=f"bundled/{Path(path).name}", sha256=sha256_file(path), run="bundled")


def scorer_settings(config: EvalConfig) -> dict:
    return {
        **config.model_dump(mode="json", include={"fuzzy_threshold", "token_coverage", "embedding_threshold",
                                                  "use_embeddings"}),
        "entities_sha256": sha256_file(ENTITIES_FILE),
    }


def score_stage(store: ArtifactStore, settings: EvaluatorSettings, system: str, force: bool = False):
    """Store mode: score the latest ``eval-<system>`` run, with the latest ``process`` corpus as lexicon."""
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    config = settings.eval
    benchmark = load_benchmark(config.benchmark)
    eval_run = runs.latest(store, f"eval-{system}")
    process_run = runs.latest(store, "process")
    inputs = [benchmark_input(config.benchmark), *runs.inputs_from(eval_run, ["responses.jsonl"]),
              *runs.inputs_from(process_run, ["corpus.txt"])]

    def body(writer: RunWriter, scratch: Path) -> None:
        responses = load_responses(runs.fetch(store, eval_run.output("responses.jsonl"), scratch / "responses.jsonl"))
        corpus = runs.fetch(store, process_run.output("corpus.txt"), scratch / "corpus.txt")
        items = benchmark
        if eval_run.settings.get("limit"):
            answered = {r.id for r in responses}
            items = [i for i in benchmark if i.id in answered]
            log.info("%s answered %d of %d questions (limit=%s); scoring those", eval_run.run, len(items),
                     len(benchmark), eval_run.settings["limit"])
        pairs = match(items, responses)
        scorer, lexicon = build(config, corpus_documents(corpus))
        scores = score_responses(pairs, scorer, lexicon)
        writer.put_json("scores.json", scores.model_dump(mode="json"))
        summary = scores.summary
        writer.metrics.update(
            items=summary["n_items"], accuracy=round(summary["accuracy"], 4),
            fabrication_rate=round(summary["fabrication_rate"], 4),
            hedged_rate=round(summary["hedging"]["hedged_rate"], 4), eval_run=eval_run.run,
        )

    return runs.run_stage(store, f"score-{system}", scorer_settings(config), inputs, body,
                          work_dir=settings.work_dir, force=force)
