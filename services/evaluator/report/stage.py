"""The ``report`` stage: read the latest score, eval and review runs, publish report.md/.html and charts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from services.evaluator.inputs import load_benchmark, load_responses
from services.evaluator.report import analysis
from services.evaluator.report.compose import TITLE, compose
from services.evaluator.report.document import Chart, to_html, to_markdown
from services.evaluator.score import benchmark_input, build
from services.evaluator.settings import EvaluatorSettings
from shared import runs
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.eval import SYSTEMS, Review, ScoreFile
from shared.store import ArtifactStore

log = logging.getLogger(__name__)
COMMAND = "als-lm report"


def _input(manifest: Manifest, suffix: str) -> InputRef:
    for ref in manifest.inputs:
        if ref.key.endswith(suffix):
            return ref
    raise ValueError(f"{manifest.run} records no input *{suffix}")


def report_stage(store: ArtifactStore, settings: EvaluatorSettings, force: bool = False):
    score_runs = {}
    for system in SYSTEMS:
        try:
            score_runs[system] = runs.latest(store, f"score-{system}")
        except RunNotFound:
            log.warning("no score-%s run: the report leaves the %s system out (run `als-lm eval score --system %s`)",
                        system, system, system)
    if not score_runs:
        raise RunNotFound(f"no score-scratch or score-rag run in {store.description}; run `als-lm eval score` first")
    review_runs = {}
    for system in score_runs:
        try:
            review_runs[system] = runs.latest(store, f"review-{system}")
        except RunNotFound:
            pass
    corpus_ref = _input(next(iter(score_runs.values())), "/corpus.txt")
    inputs = [benchmark_input(settings.eval.benchmark), corpus_ref]
    for system, run in score_runs.items():
        inputs += runs.inputs_from(run, ["scores.json"]) + [_input(run, "/responses.jsonl")]
    for run in review_runs.values():
        inputs += runs.inputs_from(run, ["reviews.jsonl"])
    fingerprinted = settings.eval.model_dump(
        mode="json", include={"leakage_ngram", "leakage_threshold", "fuzzy_threshold", "token_coverage",
                              "embedding_threshold", "use_embeddings"})

    def body(writer: RunWriter, scratch: Path) -> None:
        items = load_benchmark(settings.eval.benchmark)
        corpus = runs.fetch(store, corpus_ref, scratch / "corpus.txt")
        systems = {}
        for system, run in score_runs.items():
            scores = ScoreFile.model_validate_json(
                runs.fetch(store, run.output("scores.json"), scratch / f"{system}-scores.json").read_text())
            responses_ref = _input(run, "/responses.jsonl")
            data = analysis.SystemData(
                system, scores, load_responses(runs.fetch(store, responses_ref, scratch / f"{system}.jsonl")),
                runs={f"score-{system}": run.run, f"eval-{system}": responses_ref.run})
            if system in review_runs:
                path = runs.fetch(store, review_runs[system].output("reviews.jsonl"), scratch / f"{system}-reviews.jsonl")
                data.reviews = [Review.model_validate_json(line) for line in path.read_text().splitlines() if line]
                data.runs[f"review-{system}"] = review_runs[system].run
            systems[system] = data
        retrieval = None
        if "rag" in systems:
            scorer, _ = build(settings.eval, ())
            retrieval = analysis.retrieval(systems["rag"], {i.id: i for i in items}, scorer)
        contamination = analysis.contamination(items, systems.get("scratch"), corpus, settings.eval)
        sections = compose(systems, items, retrieval, contamination, COMMAND)
        writer.put_bytes("report.md", to_markdown(TITLE, sections).encode())
        writer.put_bytes("report.html", to_html(TITLE, sections).encode())
        for section in sections:
            for block in section.blocks:
                if isinstance(block, Chart):
                    writer.put_bytes(f"charts/{block.name}.png", block.png)
        numbers = {
            "accuracy": {s: d.scores.summary["accuracy"] for s, d in systems.items()},
            "fabrication_rate": {s: d.scores.summary["fabrication_rate"] for s, d in systems.items()},
            "hedged_rate": {s: d.scores.summary["hedging"]["hedged_rate"] for s, d in systems.items()},
            "failure_matrix": {s: analysis.failure_matrix(d) for s, d in systems.items()},
            "fact_recall": retrieval and retrieval["fact_recall"],
            "leaked_items": contamination["leaked"],
            "memorisation_max_words": contamination.get("memorisation", {}).get("max_words"),
        }
        writer.put_bytes("report.json", json.dumps(numbers, indent=2, default=str).encode())
        writer.metrics.update({k: v for k, v in numbers.items() if k != "failure_matrix"})

    return runs.run_stage(store, "report", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
