"""The ``report`` stage (``als-lm report``): read the score, eval, review and experiment runs; publish
report.md/.html and charts.

Systems are whatever ``score-<system>`` runs the store holds (scratch, rag, closed_book, ...). When the
store holds an ``experiment`` run, its ``experiment.json`` names the score run of each system and of
each checkpoint, and the report adds the learning curves and the exposure analysis.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from services.evaluator import coverage, stats
from services.evaluator.inputs import load_benchmark, load_responses
from services.evaluator.report import analysis
from services.evaluator.report import extract as extract_report
from services.evaluator.report import probe as probe_report
from services.evaluator.report.compose import TITLE, Experiment, compose
from services.evaluator.report.document import Chart, to_html, to_markdown
from services.evaluator.score import benchmark_input, build, corpus_documents
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.stages import experiment as experiment_stage
from shared import runs, stages
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.eval import SYSTEMS, Review, ScoreFile, categories_of
from shared.schemas.experiment import ExperimentResult
from shared.store import ArtifactStore

log = logging.getLogger(__name__)
COMMAND = "als-lm report"


def _score_runs(store: ArtifactStore, experiment: ExperimentResult | None) -> dict[str, Manifest]:
    """System -> score run: the experiment's where it names one, else the latest ``score-<system>``."""
    named = dict(experiment.systems) if experiment else {}
    found = {}
    for system in [*SYSTEMS, *(s for s in named if s not in SYSTEMS)]:
        if system in named:
            found[system] = runs.resolve(store, named[system])
            continue
        try:
            found[system] = runs.latest(store, f"score-{system}")
        except RunNotFound:
            log.warning("no score-%s run: the report leaves the %s system out (run `als-lm eval score --system %s`)",
                        system, system, system)
    if not found:
        raise RunNotFound(f"no score-<system> run in {store.description}; run `als-lm eval score` first")
    return found


def _scored(store: ArtifactStore, run: Manifest, dest: Path) -> tuple[ScoreFile, list, InputRef]:
    scores = ScoreFile.model_validate_json(runs.fetch(store, run.output("scores.json"), dest / "scores.json").read_text())
    ref = run.input("responses.jsonl")
    return scores, load_responses(runs.fetch(store, ref, dest / "responses.jsonl")), ref


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    found = experiment_stage.latest(store)
    experiment_run, result = found if found else (None, None)
    score_runs = _score_runs(store, result)
    checkpoint_runs = [runs.resolve(store, c.score_run) for c in result.checkpoints] if result else []
    base_runs = {c.name: runs.resolve(store, c.base_score_run) for c in result.checkpoints
                 if c.base_score_run} if result else {}
    review_runs = {}
    for system in score_runs:
        try:
            review_runs[system] = runs.latest(store, f"review-{system}")
        except RunNotFound:
            pass
    corpus_ref = next(iter(score_runs.values())).input("corpus.txt")
    inputs = [benchmark_input(settings.eval.benchmark), corpus_ref]
    for run in [*score_runs.values(), *checkpoint_runs, *base_runs.values()]:
        inputs += runs.inputs_from(run, ["scores.json"]) + [run.input("responses.jsonl")]
    for run in review_runs.values():
        inputs += runs.inputs_from(run, ["reviews.jsonl"])
    if experiment_run is not None:
        inputs += runs.inputs_from(experiment_run, ["experiment.json"])
    probe = probe_report.latest(store, result.probe_run if result else None)
    if probe is not None:
        inputs += probe[1]
    extraction = extract_report.latest(store, result.train_run if result else None)
    if extraction is not None:
        inputs += extraction[1]
    seed = settings.seed
    fingerprinted = stages.fingerprint_settings(
        "report", settings, seed=seed, bootstrap={"method": stats.METHOD, "resamples": stats.RESAMPLES,
                                                  "level": stats.LEVEL, "correct": analysis.CORRECT,
                                                  "multiplicity": "holm"})

    def body(writer: RunWriter, scratch: Path) -> None:
        items = load_benchmark(settings.eval.benchmark)
        corpus = runs.fetch(store, corpus_ref, scratch / "corpus.txt")
        systems = {}
        for system, run in score_runs.items():
            scores, responses, responses_ref = _scored(store, run, scratch / system)
            data = analysis.SystemData(system, scores, responses,
                                       runs={f"score-{system}": run.run, f"eval-{system}": responses_ref.run})
            if system in review_runs:
                path = runs.fetch(store, review_runs[system].output("reviews.jsonl"), scratch / f"{system}-reviews.jsonl")
                data.reviews = [Review.model_validate_json(line) for line in path.read_text().splitlines() if line]
                data.runs[f"review-{system}"] = review_runs[system].run
            systems[system] = data
        retrieval = None
        if "rag" in systems:
            scorer, _ = build(settings.eval, ())
            retrieval = analysis.retrieval(systems["rag"], {i.id: i for i in items}, scorer, seed)
        contamination = analysis.contamination(items, systems.get("scratch"), corpus, settings.eval)
        categories = categories_of(i.category for i in items)
        figures = {name: analysis.system_figures(s, categories, seed) for name, s in systems.items()}
        comparisons = analysis.comparisons(systems, categories, seed)
        hallucination = analysis.hallucination_comparisons(systems, seed)
        family = analysis.adjust_family(comparisons, hallucination)
        questions = {i.id: i.question for i in items}
        matrices = {name: analysis.failure_matrix(s, questions, seed) for name, s in systems.items()}
        experiment = None
        if result is not None:
            checkpoints = []
            for checkpoint, run in zip(result.checkpoints, checkpoint_runs):
                scores, responses, _ = _scored(store, run, scratch / "checkpoints" / checkpoint.name)
                base = None
                if checkpoint.name in base_runs:
                    base, _, _ = _scored(store, base_runs[checkpoint.name], scratch / "base" / checkpoint.name)
                checkpoints.append(analysis.CheckpointData(checkpoint, scores, responses, base))
            experiment = Experiment(result, experiment_run.run, analysis.learning_curves(checkpoints, corpus, seed),
                                    analysis.exposure(result, systems, seed))
        absent = coverage.absent_facts(items, corpus_documents(corpus))
        sources = sorted({i.stage for i in runs.resolve(store, corpus_ref.run).inputs})
        probe_numbers, stored, findings = None, {}, []
        if probe is not None:
            probe_section, probe_numbers = probe_report.section(probe_report.load(store, probe, scratch), seed)
            stored = probe_report.stored(probe_numbers, probe[0], {s: _train_run(store, r) for s, r in
                                                                   score_runs.items() if s.startswith("scratch")})
            if "scratch" in stored and (found := probe_report.finding(probe_numbers)):
                findings.append(found)
        extract_summary = None
        if extraction is not None:
            extract_summary = extract_report.load(store, extraction, scratch)
            findings.append(f"Extractable or not (the extraction arm): {extract_report.verdict(extract_summary['tests'])}")
        sections = compose(systems, items, retrieval, contamination, COMMAND, seed, figures, comparisons, matrices,
                           experiment, absent, hallucination, family, sources, stored, findings)
        if probe is not None:
            sections.append(probe_section)
        if extraction is not None:
            sections.append(extract_report.section(extract_summary, extraction[0].run))
        writer.put_bytes("report.md", to_markdown(TITLE, sections).encode())
        writer.put_bytes("report.html", to_html(TITLE, sections).encode())
        for section in sections:
            for block in section.blocks:
                if isinstance(block, Chart):
                    writer.put_bytes(f"charts/{block.name}.png", block.png)
        numbers = _numbers(systems, figures, comparisons, matrices, retrieval, contamination, experiment, seed)
        numbers["statistics"]["family"] = {"tests": family, "adjustment": "holm", "members": (
            "McNemar of every pair of systems on strict correctness (all questions and each category with "
            f"{stats.MIN_COMPARE_N}+ paired items) and on answers with a hallucinated claim")}
        numbers["hallucination"] = {"pooled_and_per_answer": {
            s: {"answers": c["answers"], "claims": c["claims"], "pooled": _dump(c["pooled"]),
                "per_answer": _dump(c["per_answer"])}
            for s, d in systems.items() if (c := analysis.claim_figures(d, seed))}, "comparisons": hallucination}
        if probe_numbers is not None:
            numbers["probe"] = probe_numbers
        if extract_summary is not None:
            numbers["extractable"] = extract_summary
        numbers["benchmark"] = {"items": len(items), "unanswerable": sum(not i.answerable for i in items),
                                "dated": {i.id: i.as_of.isoformat() for i in items if i.as_of},
                                "facts_absent_from_corpus": len(absent),
                                "counted_facts_absent_from_corpus": sum(f.counted for f in absent)}
        writer.put_bytes("report.json", json.dumps(numbers, indent=2, default=str).encode())
        writer.metrics.update(_metrics(numbers, figures, comparisons))

    return runs.run_stage(store, "report", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)


def _metrics(numbers: dict, figures: dict[str, dict], comparisons: list[dict]) -> dict:
    """The run's metrics: headline shares and their interval bounds as ``{name: float}`` maps (what
    ``als-lm demo`` prints as percentages); n, the method and the p-values are in ``report.json``."""
    out = {k: numbers[k] for k in ("hallucination_rate", "accuracy", "fabrication_rate", "hedged_rate",
                                   "fact_recall", "leaked_items", "memorisation_max_words")}
    out["correct_rate"] = {s: f["figures"]["correct"].estimate for s, f in figures.items()}
    for name, key in (("accuracy", "accuracy"), ("correct_rate", "correct"), ("fabrication_rate", "fabrication"),
                      ("hedged_rate", "hedged")):
        for bound in ("low", "high"):
            out[f"{name}_{bound}"] = {s: getattr(f["figures"][key], bound) for s, f in figures.items()
                                      if f["figures"][key].defined}
    overall = [c for c in comparisons if c["category"] is None and not c["too_small"]]
    for field, metric in (("estimate", "accuracy_difference"), ("low", "accuracy_difference_low"),
                          ("high", "accuracy_difference_high")):
        if overall:
            out[metric] = {f"{c['a']} − {c['b']}": c["difference"][field] for c in overall}
    return out


def _dump(intervals: dict[str, stats.Interval]) -> dict[str, dict]:
    return {name: i.model_dump() for name, i in intervals.items()}


def _train_run(store: ArtifactStore, scored: Manifest) -> str:
    """The train run whose model a scratch score run's answers came from (score <- eval <- serve <- export)."""
    asked = runs.resolve(store, next(i.run for i in scored.inputs if i.stage.startswith("eval-")))
    return runs.resolve(store, runs.resolve(store, asked.upstream("serve")).upstream("export")).upstream("train")


def _numbers(systems, figures, comparisons, matrices, retrieval, contamination, experiment, seed) -> dict:
    """``report.json``: the headline numbers, every interval, every paired comparison."""
    out = {
        "statistics": {"method": stats.METHOD, "level": stats.LEVEL, "resamples": stats.RESAMPLES, "seed": seed,
                       "min_interval_n": stats.MIN_INTERVAL_N, "min_compare_n": stats.MIN_COMPARE_N,
                       "correct": analysis.CORRECT},
        "accuracy": {s: d.scores.summary["accuracy"] for s, d in systems.items()},
        "fabrication_rate": {s: d.scores.summary["fabrication_rate"] for s, d in systems.items()},
        "hedged_rate": {s: d.scores.summary["hedging"]["hedged_rate"] for s, d in systems.items()},
        # pooled over all claims of all answers (analysis.claim_figures), not the score summary's mean of
        # per-answer shares over the answers that made a claim
        "hallucination_rate": {s: rate for s, d in systems.items() if (c := analysis.claim_figures(d, seed))
                               and (rate := c["pooled"]["hallucinated"].estimate) is not None},
        "claims": {s: d.scores.summary["claims"] for s, d in systems.items() if d.scores.summary.get("claims")},
        "faithfulness": {s: d.scores.summary["faithfulness"] for s, d in systems.items()
                         if d.scores.summary.get("faithfulness")},
        "systems": {s: {"n": f["n"], "figures": _dump(f["figures"]),
                        "by_category": {c: {"n": v["n"], "too_small": v["too_small"], "figures": _dump(v["figures"])}
                                        for c, v in f["by_category"].items() if v["n"]}}
                    for s, f in figures.items()},
        "comparisons": comparisons,
        "failure_matrix": {s: {**m, "intervals": _dump(m["intervals"])} for s, m in matrices.items()},
        "fact_recall": retrieval and retrieval["fact_recall"],
        "fact_recall_interval": retrieval and retrieval["fact_recall_interval"].model_dump(),
        "leaked_items": contamination["leaked"],
        "memorisation_max_words": contamination.get("memorisation", {}).get("max_words"),
    }
    if experiment is not None:
        out["experiment"] = {
            "run": experiment.run,
            "checkpoints": [{k: (v.model_dump() if isinstance(v, stats.Interval) else v) for k, v in c.items()}
                            for c in experiment.curves],
            "exposure": {"items": experiment.exposure["items"],
                         "accuracy": {s: _dump(by) for s, by in experiment.exposure["accuracy"].items()}},
        }
    return out
