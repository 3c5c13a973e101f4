"""The ``experiment`` stage: ``experiment.json``, which links by id every run of one experiment (the
train run, each kept checkpoint's export, serve, eval and score runs, and the score run of each
system) with the fact-exposure analysis, for the report's learning curves (docs/experiment.md).

``als-lm experiment`` runs the stages and names the runs to link (``eval.train_run``,
``eval.checkpoint_scores``, ``eval.checkpoint_base_scores``, ``eval.system_scores``); each checkpoint's
other runs are followed back from its score run through the inputs every run recorded, so nothing
pairs "the latest" run.
"""

from __future__ import annotations

from pathlib import Path

from services.evaluator.exposure import exposure
from services.evaluator.inputs import load_benchmark
from services.evaluator.score import benchmark_input
from services.evaluator.settings import EvaluatorSettings
from shared import runs
from shared.errors import InvalidInput
from shared.manifest import InputRef, Manifest
from shared.runs import RunWriter
from shared.schemas.corpus import CleanDocument
from shared.schemas.experiment import ExperimentResult
from shared.store import ArtifactStore


def latest(store: ArtifactStore) -> tuple[Manifest, ExperimentResult] | None:
    """The latest ``experiment`` run and its validated result, or None when there is none."""
    try:
        manifest = runs.latest(store, "experiment")
    except runs.RunNotFound:
        return None
    return manifest, ExperimentResult.model_validate_json(store.get_bytes(manifest.output("experiment.json").key))


def linked_checkpoints(store: ArtifactStore, train: Manifest, scores: dict[str, str],
                       base_scores: dict[str, str] | None = None) -> list[dict]:
    """Each named checkpoint of ``train`` (in step order) with the runs that exported, served, asked
    and scored it: the score run read the eval run, which read the serve run, which read the export.
    A base-condition score run must have asked the same served model."""
    kept = train.metrics.get("checkpoints") or []
    unknown = sorted(set(scores) - {k["name"] for k in kept})
    if unknown:
        raise InvalidInput(f"{train.run} kept no checkpoint {', '.join(unknown)}")
    linked = []
    for checkpoint in (k for k in kept if k["name"] in scores):
        scored = runs.resolve(store, scores[checkpoint["name"]])
        asked = runs.resolve(store, scored.upstream("eval-scratch"))
        served = runs.resolve(store, asked.upstream("serve"))
        entry = {**checkpoint, "export_run": served.upstream("export"), "serve_run": served.run,
                 "eval_run": asked.run, "score_run": scored.run}
        if name := (base_scores or {}).get(checkpoint["name"]):
            base = runs.resolve(store, name)
            base_asked = runs.resolve(store, base.upstream("eval-scratch_base"))
            if base_asked.upstream("serve") != served.run:
                raise InvalidInput(f"checkpoint {checkpoint['name']}: {base.run} asked {base_asked.upstream('serve')}"
                                   f", not the served model of {scored.run} ({served.run})")
            entry |= {"base_eval_run": base_asked.run, "base_score_run": base.run}
        linked.append(entry)
    return linked


def experiment_inputs(store: ArtifactStore, benchmark: Path, train: Manifest, process: Manifest,
                      linked: list[str]) -> list[InputRef]:
    """Everything experiment.json is built from: a change in any of them publishes a new one."""
    inputs = [benchmark_input(benchmark), *runs.inputs_from(process, ["train.jsonl", "val.jsonl"]),
              *runs.inputs_from(train, ["metrics.csv"])]
    for ref in linked:
        inputs += runs.inputs_from(runs.resolve(store, ref))
    return inputs


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    cfg = settings.eval
    if not (cfg.train_run and cfg.checkpoint_scores and cfg.system_scores):
        raise InvalidInput("the experiment stage links the runs named by eval.train_run, eval.checkpoint_scores "
                           "and eval.system_scores; `als-lm experiment` runs them and names them")
    train = runs.resolve(store, cfg.train_run)
    process = runs.resolve(store, runs.resolve(store, train.upstream("tokenize")).upstream("process"))
    checkpoints = linked_checkpoints(store, train, cfg.checkpoint_scores, cfg.checkpoint_base_scores)
    systems = cfg.system_scores
    benchmark = Path(cfg.benchmark)
    linked = [r for c in checkpoints for r in (c["export_run"], c["serve_run"], c["eval_run"], c["score_run"],
                                               c.get("base_eval_run"), c.get("base_score_run")) if r]
    linked += [*systems.values(), *(runs.resolve(store, s).metrics["eval_run"] for s in systems.values())]
    probe = runs.resolve(store, cfg.probe_run) if cfg.probe_run else None
    if probe is not None:
        if probe.stage != "probe-scratch" or probe.metrics.get("train_run") != train.run:
            raise InvalidInput(f"{probe.run} is not a probe-scratch run of {train.run}")
        linked.append(probe.run)
    inputs = experiment_inputs(store, benchmark, train, process, sorted(set(linked)))

    def body(writer: RunWriter, scratch: Path) -> None:
        def documents(name: str) -> list[CleanDocument]:
            path = runs.fetch(store, process.output(name), scratch / name)
            return [CleanDocument.model_validate_json(line) for line in path.read_text().splitlines() if line.strip()]

        result = ExperimentResult(
            preset=train.metrics["preset"], parameters=train.metrics["params"], train_run=train.run,
            unigram_val_loss=train.metrics.get("unigram_val_loss"), checkpoints=checkpoints, systems=systems,
            probe_run=probe.run if probe else None, seed_train_runs=probe.metrics["train_runs"][1:] if probe else [],
            exposure=exposure(load_benchmark(benchmark), documents("train.jsonl"), documents("val.jsonl")),
        )
        writer.put_json("experiment.json", result.model_dump(mode="json"))
        writer.metrics.update(
            train_run=train.run,
            checkpoints={c["name"]: {"tokens_seen": c["tokens_seen"],
                                     "accuracy": runs.resolve(store, c["score_run"]).metrics.get("accuracy")}
                         for c in checkpoints},
            systems={s: runs.resolve(store, r).metrics.get("accuracy") for s, r in systems.items()},
        )

    linking = {"train_run": train.run, "checkpoints": checkpoints, "systems": systems,
               "probe_run": probe.run if probe else None}
    return runs.run_stage(store, "experiment", linking, inputs, body, work_dir=settings.work_dir, force=force)
