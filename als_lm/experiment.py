"""``als-lm experiment``: the experiment that answers the project's question, end to end.

A from-scratch model is trained with checkpoints kept at fixed fractions of its tokens; each kept
checkpoint is exported, served in Ollama under its own tag, asked every benchmark question through
its chat template and raw as a base model (k-shot), and scored (the learning curve). The RAG baseline and the closed-book control (the same generator
without the retrieved context) answer the same questions. The same config is trained with the other
``seeds`` too, and every seed's points of training (the kept checkpoints and the weights-only probe
snapshots) are scored in process on the likelihood probe (docs/probe.md). ``experiment/<run_id>/experiment.json``
links every run by id with the fact-exposure analysis, and ``als-lm report`` draws it all.

The corpus, tokenizer and training stages run as their own processes (as in the demo); the stages
per checkpoint and per system run in this process so that each one is handed the exact run ids of
its upstream runs: nothing pairs "the latest" run, so a skipped stage never pairs the wrong ones.
Every stage is skip-if-unchanged, so an interrupted experiment resumes where it stopped and a rerun
with nothing changed only checks fingerprints.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import click
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from als_lm.stack import LocalStack, Step, explore_hint, show_report
from shared import runs, userfiles
from shared.log import console
from shared.manifest import Manifest
from shared.runs import RunNotFound
from shared.settings import SettingsError
from shared.store import ArtifactStore, open_store

log = logging.getLogger(__name__)

CONFIGS = Path(__file__).resolve().parents[1] / "services" / "trainer" / "configs"
CPU_CONFIG = CONFIGS / "experiment-cpu.yaml"


class ExperimentConfig(BaseModel):
    """One file for the whole experiment: sources, the train settings, and the service sections
    (``export``, ``eval``, ``rag``) passed to every stage as ``ALS_<SECTION>__<FIELD>``."""

    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(["sample"], min_length=1, description="scrape sources, in order")
    device: str = Field("cpu", pattern="^(cpu|cuda)$")
    limit: int | None = Field(None, ge=1, description="questions per system; None = all of them")
    threads: int | None = Field(
        None, ge=1, description="CPU threads per stage (OMP_NUM_THREADS); on a busy 2-core machine one thread "
        "per process avoids oversubscription, which slows small matmuls by an order of magnitude")
    alone_threads: int | None = Field(
        None, ge=1, description="Ollama threads for the baselines left once training and the checkpoints are "
        "done: the background run is stopped and the rest asked with the machine to itself, resuming from its "
        "journaled answers; None: the background runs to the end with eval.num_thread")
    seeds: list[int] = Field([1337], min_length=1, description="training seeds of the from-scratch model: the "
                             "first is the main run (its checkpoints exported, served and asked), the others are "
                             "trained with the same config and probed, for the probe curve's spread over seeds")
    train: dict[str, Any] = Field(description="als-lm train settings (a train config); keep_at_fractions names "
                                  "the learning curve's checkpoints, probe_at_fractions the probe's snapshots")
    export: dict[str, Any] = {}
    eval: dict[str, Any] = {}
    rag: dict[str, Any] = {}
    probe: dict[str, Any] = {}

    def check(self) -> None:
        """Every section is validated by its service's own model before anything runs."""
        from services.evaluator.settings import EvalConfig, ProbeConfig, RagConfig
        from services.exporter.settings import ExportConfig
        from services.trainer.settings import TrainConfig

        for name, model in (("train", TrainConfig), ("export", ExportConfig), ("eval", EvalConfig),
                            ("rag", RagConfig), ("probe", ProbeConfig)):
            try:
                model.model_validate(getattr(self, name))
            except ValidationError as err:
                raise SettingsError(userfiles.summarize(f"experiment config, section {name}",
                                                        userfiles.validation_problems(err))) from None
        if not self.train.get("keep_at_fractions"):
            raise SettingsError("experiment config: train.keep_at_fractions must name the checkpoints to keep")
        if len(set(self.seeds)) != len(self.seeds):
            raise SettingsError(f"experiment config: seeds repeat: {self.seeds}")

    def env(self) -> dict[str, str]:
        """The service sections as environment variables every stage process and call reads."""
        env = {"OMP_NUM_THREADS": str(self.threads), "MKL_NUM_THREADS": str(self.threads)} if self.threads else {}
        for section in ("export", "eval", "rag", "probe"):
            for key, value in getattr(self, section).items():
                env[f"ALS_{section.upper()}__{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
        return env


def read_config(path: Path) -> ExperimentConfig:
    data = userfiles.read_yaml(path, "experiment config") or {}
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as err:
        raise SettingsError(userfiles.summarize(f"experiment config {path} is invalid",
                                                userfiles.validation_problems(err))) from None
    config.check()
    return config


def front_steps(config: ExperimentConfig, train_config: Path) -> list[Step]:
    """Corpus → tokenizer → probe items → trained model with kept checkpoints (the RAG index and the
    baselines are built and asked in the background meanwhile)."""
    return [
        *(Step(f"ingest: scrape {source}", ("scrape", source)) for source in config.sources),
        Step("process: clean, dedup, filter, split", ("process",)),
        Step("tokenizer: train BPE, validate, write shards", ("tokenize",)),
        Step("probe: cut cloze items from the benchmark's key facts and the corpus", ("probe", "items")),
        Step(f"train the {config.train.get('preset')} preset (seed {config.seeds[0]}), keeping checkpoints at "
             f"{config.train['keep_at_fractions']} of its steps", ("train", "--config", str(train_config)),
             {"ALS_SEED": str(config.seeds[0])}),
    ]


def seed_steps(config: ExperimentConfig, train_config: Path) -> tuple[list[Step], list[Step]]:
    """The other seeds' training (the same config, probed only: the probe curve's spread over seeds), in two
    lanes: one in the background from the end of the first seed on, beside the checkpoints; the other in the
    foreground once the checkpoints are done. With the baselines' lane that keeps both cores busy to the end
    (one lane of seeds left a core idle for ~19 minutes: docs/experiment.md, "The budget")."""
    steps = [Step(f"train the {config.train.get('preset')} preset with seed {seed} (probed only)",
                  ("train", "--config", str(train_config)), {"ALS_SEED": str(seed)}) for seed in config.seeds[1:]]
    return steps[0::2], steps[1::2]


def lane_name(step: Step) -> str:
    """How a background step is named in timings.json and in the messages about it."""
    if "ALS_SEED" in step.env:
        return f"training seed {step.env['ALS_SEED']}"
    return step.argv[3] if step.argv[:2] == ("eval", "run") else " ".join(step.argv[:2])


BASELINES = (("rag", "RAG"), ("closed_book", "closed-book"))


def background_steps(limit: int | None, force: bool) -> list[Step]:
    """What does not need the model, as stage processes beside training: the RAG index, the RAG generator's
    probe (it cannot resume, so it must end before the foreground stops the background), then the baselines'
    answers, RAG (the longest) and the closed-book control (journaled: a stopped run resumes)."""
    forced = ("--force",) if force else ()
    return [Step("RAG: chunk, embed, index in ChromaDB", ("rag", "index", *forced), resumable=False),
            Step("probe the RAG generator closed-book and with its chunks", ("probe", "rag", *forced),
                 resumable=False),
            *(Step(f"ask the {label} baseline", ("eval", "run", "--system", system,
                                                  *(("--limit", str(limit)) if limit else ()), *forced))
              for system, label in BASELINES)]


def train_run(store: ArtifactStore, config: ExperimentConfig, seed: int, tokens: Manifest | None = None) -> Manifest:
    """The train run of this config and seed: found by its fingerprint, as the train stage itself decided to
    run or skip, so an older or newer run of another config is never taken for it. ``tokens``: the token
    shards it trained on when not the latest ``tokenize`` run (the extraction arm's ``extract-tokens``)."""
    from services.trainer.settings import TrainerSettings
    from services.trainer.stages.train import INPUTS
    from shared import stages
    from shared.settings import load

    train = config.train | ({"tokens_run": tokens.run} if tokens else {})
    settings = load(TrainerSettings, train=train, seed=seed)
    tokens = tokens or runs.latest(store, "tokenize")  # the one the train stage just read
    probe = runs.fingerprint("train", stages.fingerprint_settings("train", settings), runs.inputs_from(tokens, INPUTS))
    found = [m for m in runs.runs(store, "train") if m.fingerprint == probe]
    if not found:
        raise RunNotFound(f"no train run of this config with seed {seed} on {tokens.run} in {store.description}")
    return found[-1]


def model_name(checkpoint: str, weights_sha256: str) -> str:
    """A served tag per checkpoint's weights: another experiment's checkpoint of the same name never
    takes its place in the server."""
    return f"als-lm-{checkpoint.lower()}-{weights_sha256[:8]}"


class Chain:
    """The in-process stages of one experiment, each handed its upstream run by id."""

    def __init__(self, store: ArtifactStore, limit: int | None, force: bool):
        self.store, self.limit, self.force = store, limit, force
        self.timings: dict[str, float] = {}

    def timed(self, label: str, fn, *args, **kwargs):
        t0 = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.timings[label] = round(self.timings.get(label, 0.0) + time.monotonic() - t0, 1)

    def ask_and_score(self, system: str, label: str, serve_run: str | None = None,
                      force: bool | None = None, threads: int | None = None) -> tuple[Manifest, Manifest]:
        from services.evaluator.settings import EvaluatorSettings
        from services.evaluator.stages import eval as asking
        from services.evaluator.stages import score as scoring
        from shared.settings import load

        chosen = {"system": system, "limit": self.limit, "serve_run": serve_run}
        settings = load(EvaluatorSettings, eval=chosen | ({"num_thread": threads} if threads else {}))
        asked, ran = self.timed(label, asking.run, self.store, settings,
                                force=self.force if force is None else force)
        console.print(f"  eval-{system}: {'published' if ran else 'unchanged'} {asked.run}")
        settings = load(EvaluatorSettings, eval={"system": system, "eval_run": asked.run})
        scored, ran = self.timed(label, scoring.run, self.store, settings, force=self.force)
        console.print(f"  score-{system}: {'published' if ran else 'unchanged'} {scored.run} "
                      f"(accuracy {scored.metrics.get('accuracy')})")
        return asked, scored

    def checkpoint(self, train: Manifest, kept: dict) -> dict:
        """Export, serve, ask and score one kept checkpoint; its runs by id."""
        from services.exporter.settings import ExporterSettings
        from services.exporter.stages import export, serve
        from shared.settings import load

        name = kept["name"]
        weights = train.output(f"checkpoints/{name}/model.pt")
        label = f"checkpoint {name}"
        settings = load(ExporterSettings, export={"train_run": train.run, "checkpoint": name,
                                                  "model_name": model_name(name, weights.sha256)})
        exported, ran = self.timed(label, export.run, self.store, settings, force=self.force)
        console.print(f"  export: {'published' if ran else 'unchanged'} {exported.run}")
        settings = load(ExporterSettings, serve={"export_run": exported.run})
        served, ran = self.timed(label, serve.run, self.store, settings, force=self.force)
        console.print(f"  serve: {'published' if ran else 'unchanged'} {served.run} {served.metrics.get('tags')}")
        asked, scored = self.ask_and_score("scratch", label, served.run)
        base_asked, base_scored = self.ask_and_score("scratch_base", f"{label} (base)", served.run)
        return {**kept, "export_run": exported.run, "serve_run": served.run, "eval_run": asked.run,
                "score_run": scored.run, "base_eval_run": base_asked.run, "base_score_run": base_scored.run}

    def probe(self, train: Manifest, seed_runs: list[Manifest]) -> Manifest:
        """The probe items, and every seed's points of training scored on them in process (docs/probe.md)."""
        from services.evaluator.settings import EvaluatorSettings
        from services.evaluator.stages import probe, probe_items
        from shared.settings import load

        # published by the experiment's own step before training (the RAG probe in the background reads them)
        items, ran = self.timed("probe", probe_items.run, self.store, load(EvaluatorSettings), force=False)
        console.print(f"  probe-items: {'published' if ran else 'unchanged'} {items.run} ({items.metrics['items']} "
                      f"items of {items.metrics['facts']} key facts)")
        settings = load(EvaluatorSettings, probe={"items_run": items.run, "train_run": train.run,
                                                  "seed_runs": [r.run for r in seed_runs]})
        probed, ran = self.timed("probe", probe.run, self.store, settings, force=self.force)
        accuracy = probed.metrics["accuracy"]
        console.print(f"  probe-scratch: {'published' if ran else 'unchanged'} {probed.run} ({probed.metrics['points']}"
                      f" points of {len(probed.metrics['seeds'])} seeds; accuracy@1 of the final model "
                      f"{accuracy['scratch']:.3f}, bigram {accuracy['ngram-2']:.3f}, chance {probed.metrics['chance']:.3f})")
        return probed


def probe_llama_systems(chain: Chain, scratch: Manifest, checkpoints: list[dict],
                        threads: int | None = None) -> dict[str, str]:
    """The probe through llama.cpp (docs/probe.md): each exported checkpoint's GGUF beside the in-process probe
    run ``scratch``, and the RAG generator closed-book and with retrieval on the same items (found by
    fingerprint when the background published it)."""
    from services.evaluator.settings import EvaluatorSettings
    from services.evaluator.stages import probe_gguf, probe_rag
    from shared.settings import load

    probed = {}
    eval_threads = {"eval": {"num_thread": threads}} if threads else {}
    for stage, module, chosen, force in (
            ("probe-gguf", probe_gguf, {"scratch_run": scratch.run,
                                        "export_runs": [c["export_run"] for c in checkpoints]}, chain.force),
            ("probe-rag", probe_rag, {"items_run": scratch.upstream("probe-items")}, False)):
        manifest, ran = chain.timed(stage, module.run, chain.store,
                                    load(EvaluatorSettings, probe=chosen, **eval_threads), force=force)
        console.print(f"  {stage}: {'published' if ran else 'unchanged'} {manifest.run} "
                      f"(accuracy@1 {manifest.metrics['accuracy']})")
        probed[stage] = manifest.run
    return probed


def link_runs(store: ArtifactStore, train: Manifest, checkpoints: list[dict], systems: dict[str, str],
              probe: Manifest | None, force: bool) -> tuple[Manifest, bool]:
    """Publish experiment.json linking this experiment's runs (services/evaluator/stages/experiment.py)."""
    from services.evaluator.settings import EvaluatorSettings
    from services.evaluator.stages import experiment as linking
    from shared.settings import load

    settings = load(EvaluatorSettings, eval={
        "train_run": train.run, "system_scores": systems,
        "checkpoint_scores": {c["name"]: c["score_run"] for c in checkpoints},
        "checkpoint_base_scores": {c["name"]: c["base_score_run"] for c in checkpoints},
        "probe_run": probe.run if probe else None})
    return linking.run(store, settings, force=force)


def summary_lines(store: ArtifactStore, checkpoints: list[dict], systems: dict[str, str]) -> list[str]:
    def row(label: str, score_ref: str) -> str:
        m = runs.resolve(store, score_ref).metrics
        return (f"  {label:<28} accuracy {m.get('accuracy', float('nan')):.3f}  fabrication "
                f"{m.get('fabrication_rate', float('nan')):.3f}  hedged {m.get('hedged_rate', float('nan')):.3f}"
                f"  (n={m.get('items')})")

    lines = [row(f"{system} {c['name']} ({c['tokens_seen']:,} tok)", c[run]) for c in checkpoints
             for system, run in (("scratch", "score_run"), ("scratch_base", "base_score_run"))]
    return lines + [row(system, ref) for system, ref in systems.items() if not system.startswith("scratch")]


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=CPU_CONFIG, show_default=True,
              help="Experiment config: experiment-cpu.yaml (2 CPU cores) or experiment-gpu.yaml (real corpus, base).")
@click.option("--root", type=click.Path(path_type=Path), default=Path("volumes/experiment"), show_default=True,
              help="Where the experiment keeps its store, Ollama models and scratch space.")
@click.option("--store", "store_kind", type=click.Choice(["local", "minio"]), default="local", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Ask only this many questions per system (overrides the config; a quick check).")
@click.option("--force", is_flag=True, help="Rerun every stage even when unchanged.")
def experiment(config_path: Path, root: Path, store_kind: str, limit: int | None, force: bool) -> None:
    """Train with kept checkpoints; ask and score each one, RAG and the closed-book control on every question;
    publish experiment.json (learning curves, fact exposure) and the report."""
    config = read_config(config_path)
    limit = limit or config.limit
    started = time.monotonic()
    timings: dict[str, float] = {}
    with LocalStack(root, store_kind, bucket="als-lm-experiment", env=config.env(),
                    cpu=config.device == "cpu") as stack:
        train_config = stack.root / "work" / "experiment-train.yaml"
        train_config.parent.mkdir(parents=True, exist_ok=True)
        train_config.write_text(yaml.safe_dump(config.train))
        steps = front_steps(config, train_config)
        seeds_beside, seeds_after = seed_steps(config, train_config)
        total = len(steps) + len(seeds_after) + 4
        *corpus, training = steps
        for number, step in enumerate(corpus, 1):
            label = " ".join(step.argv[:2])
            timings[label] = round(timings.get(label, 0.0) + stack.run(step, number, total, force,
                                                                       rerun="make experiment"), 1)
        logs = stack.root / "work" / "logs"
        console.print("indexing for RAG, probing its generator, then asking the RAG and closed-book baselines in the "
                      f"background (log: {logs / 'baselines.log'})")
        baselines = stack.background(background_steps(limit, force), logs / "baselines.log")
        timings["training"] = round(stack.run(training, len(steps), total, force, rerun="make experiment"), 1)
        if seeds_beside:
            console.print(f"training seed(s) {', '.join(s.env['ALS_SEED'] for s in seeds_beside)} in the background "
                          f"beside the checkpoints (log: {logs / 'seeds.log'})")
        seed_lane = stack.background(seeds_beside, logs / "seeds.log")

        os.environ.update(stack.env)  # the in-process stages read the same settings as the processes
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        store = open_store(stack.store_settings)
        train = train_run(store, config, config.seeds[0])
        chain = Chain(store, limit, force)

        kept = train.metrics.get("checkpoints") or []
        console.rule(f"[bold]{len(steps) + 1}/{total} learning curve: {len(kept)} checkpoints of {train.run}")
        checkpoints, failed = [], []
        for entry in kept:
            console.print(f"[bold]checkpoint {entry['name']}[/bold] ({entry['tokens_seen']:,} tokens seen)")
            try:
                checkpoints.append(chain.checkpoint(train, entry))
            except Exception as err:  # noqa: BLE001 - reported by name below; the others still run
                failed.append(f"checkpoint {entry['name']} of {train.run}: {type(err).__name__}: {err}")
                console.print(f"[red]{failed[-1]}[/red]")
        for number, step in enumerate(seeds_after, len(steps) + 2):
            timings[lane_name(step)] = round(stack.run(step, number, total, force, rerun="make experiment"), 1)
        for step, code, seconds in seed_lane.join():
            timings[f"{lane_name(step)} (background)"] = seconds
            if code != 0:  # trained again here, where a failure stops the experiment with its error
                console.print(f"[yellow]the background {lane_name(step)} failed (exit {code}, see "
                              f"{logs / 'seeds.log'}); training it here[/yellow]")
                timings[lane_name(step)] = round(stack.run(step, len(steps) + 1, total, force,
                                                           rerun="make experiment"), 1)
        console.rule(f"[bold]{len(steps) + len(seeds_after) + 2}/{total} baselines: RAG and the closed-book control")
        t0 = time.monotonic()
        if config.alone_threads:
            baselines.stop(finish_unresumable=True)  # running answers end (journaled); the RAG probe finishes
            console.print(f"the baselines not yet published are asked here with {config.alone_threads} Ollama "
                          "threads, from their last journaled answer")
        asked_in_background = {}
        for step, code, seconds in baselines.join():
            name = lane_name(step)
            timings[f"{name} (background)"] = seconds
            asked_in_background[name] = code == 0
            if code > 0:  # < 0: stopped above
                console.print(f"[yellow]the background {name} run failed (exit {code}, see "
                              f"{logs / 'baselines.log'}); running it here[/yellow]")
        if not asked_in_background.get("rag index"):  # stopped before it, or failed: its error is raised here
            timings["rag index"] = round(stack.run(background_steps(limit, force)[0], len(steps) + 1, total, force,
                                                   rerun="make experiment"), 1)
        timings["waiting for the background"] = round(time.monotonic() - t0, 1)
        systems = {}
        for system, label in BASELINES:
            _, scored = chain.ask_and_score(system, label, force=False if asked_in_background.get(system) else None,
                                            threads=config.alone_threads)
            systems[system] = scored.run

        console.rule(f"[bold]{len(steps) + len(seeds_after) + 3}/{total} probe: {len(config.seeds)} seed(s) scored in "
                     "process at every point of training, each checkpoint's GGUF, the RAG generator")
        if config.alone_threads:  # the machine to itself: the probe gets both cores
            torch.set_num_threads(config.alone_threads)
        try:
            probed = chain.probe(train, [train_run(store, config, seed) for seed in config.seeds[1:]])
            if checkpoints:
                probe_llama_systems(chain, probed, checkpoints, threads=config.alone_threads)
        except Exception as err:  # noqa: BLE001 - reported by name below; the experiment.json still links the rest
            probed = None
            failed.append(f"the probe of {train.run}: {type(err).__name__}: {err}")
            console.print(f"[red]{failed[-1]}[/red]")

        timings.update(chain.timings)
        if failed or not checkpoints:
            problem = "; ".join(failed) or f"train run {train.run} kept no checkpoints (set keep_at_fractions)"
            raise click.ClickException(f"{problem}. The finished checkpoints stay published; fix the error "
                                       "and rerun `make experiment`: they are skipped")
        systems = {"scratch": checkpoints[-1]["score_run"], "scratch_base": checkpoints[-1]["base_score_run"],
                   **systems}

        console.rule(f"[bold]{total}/{total} experiment.json and the report")
        t0 = time.monotonic()
        result, ran = link_runs(store, train, checkpoints, systems, probed, force)
        console.print(f"experiment: {'published' if ran else 'unchanged'} {result.run}")
        report = Step("write the report", ("report",))
        stack.run(report, total, total, force, rerun="make experiment")
        timings["experiment.json and report"] = round(time.monotonic() - t0, 1)
        report_run = show_report(store, stack.root / "report")

        console.rule("[bold green]ALS-LM experiment finished")
        for line in summary_lines(store, checkpoints, systems):
            console.print(line)
        if probed is not None:
            console.print(f"  probe ({probed.run}): accuracy@1 " + ", ".join(
                f"{name} {value:.3f}" for name, value in probed.metrics["accuracy"].items())
                + f"; chance {probed.metrics['chance']:.3f}")
        elapsed = round(time.monotonic() - started, 1)
        console.print(f"total time: {elapsed:.0f}s; by stage: "
                      + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
        (stack.root / "timings.json").write_text(json.dumps({"total_s": elapsed, "stages_s": timings,
                                                              "experiment_run": result.run}, indent=2))
        console.print(f"results: {result.run} in {store.description}; report: {stack.root / 'report' / 'report.html'} "
                      f"({report_run})")
        console.print(f"explore the results in the UI (no Docker): [bold]{explore_hint(root, store_kind)}[/bold]")
