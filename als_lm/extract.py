"""``als-lm experiment-extract``: the extraction arm of the experiment (issue 23, docs/extract.md).

Does question-answer text for some facts make the others extractable at this scale (Allen-Zhu & Li 2023)?
On the store of ``make experiment``: the probed facts split into two halves by benchmark item, QA text
written from the training sentences that state the ``qa_exposed`` half, a second model trained on the main
run's token shards plus that text (the main run's tokenizer, preset, steps, kept checkpoints and seed: the
same experiment config), then both models measured on both halves, paired: the probe in process, and QA as
``make experiment`` asks its base condition (each kept checkpoint exported, served in Ollama, asked raw and
k-shot, scored). Every other seed of the experiment gets its extraction model too, probed beside that seed's
main model. The report is rewritten with its section "Extractable or not". The corpus, tokenizer and
main model, and the main model's answers, are the main run's, found by fingerprint (their stages skip);
the baselines' runs are left as they are.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import yaml

from als_lm.experiment import CPU_CONFIG, Chain, ExperimentConfig, front_steps, read_config, train_run
from als_lm.stack import Background, LocalStack, Step, show_report
from shared.log import console
from shared.manifest import Manifest
from shared.store import open_store

RERUN = "make experiment-extract"


def seed_lanes(stack: LocalStack, config: ExperimentConfig, main_config: Path, extract_config: Path,
               force: bool) -> list[Background]:
    """One background lane per other seed of the experiment: that seed's main model (found by fingerprint when
    ``make experiment`` trained it) and then its extraction model, beside the first seed's training and
    checkpoints in the foreground, so the seeds cost the cores that would otherwise idle (docs/extract.md)."""
    lanes = []
    for seed in config.seeds[1:]:
        steps = [Step(f"train the main model with seed {seed}", ("train", "--config", str(main_config)),
                      {"ALS_SEED": str(seed)}),
                 Step(f"train the extraction model with seed {seed}",
                      ("train", "--config", str(extract_config), *(("--force",) if force else ())), {"ALS_SEED": str(seed)})]
        log = stack.root / "work" / "logs" / f"extract-seed-{seed}.log"
        console.print(f"training seed {seed}'s main and extraction models in the background (log: {log})")
        lanes.append(stack.background(steps, log))
    return lanes


@click.command("experiment-extract")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=CPU_CONFIG, show_default=True, help="The experiment config of the main run (make experiment).")
@click.option("--root", type=click.Path(path_type=Path), default=Path("volumes/experiment"), show_default=True,
              help="The main experiment's root: its store holds the corpus, tokenizer and model reused here.")
@click.option("--store", "store_kind", type=click.Choice(["local", "minio"]), default="local", show_default=True)
@click.option("--force", is_flag=True, help="Rerun the extraction arm's stages even when unchanged.")
def experiment_extract(config_path: Path, root: Path, store_kind: str, force: bool) -> None:
    """QA text for half of the probed facts, a second model trained with it, both models probed and asked on
    both halves, paired; the report's section "Extractable or not"."""
    from services.evaluator.settings import EvaluatorSettings
    from services.evaluator.stages import extract_measure, extract_qa, probe_items
    from services.processor.settings import ProcessorSettings
    from services.processor.stages import extract_tokens
    from shared.settings import load

    config = read_config(config_path)
    started = time.monotonic()
    timings: dict[str, float] = {}
    with LocalStack(root, store_kind, bucket="als-lm-experiment", env=config.env(),
                    cpu=config.device == "cpu") as stack:
        work = stack.root / "work"
        work.mkdir(parents=True, exist_ok=True)
        main_config = work / "experiment-train.yaml"
        main_config.write_text(yaml.safe_dump(config.train))
        # The main run's corpus, tokenizer and model (skipped when make experiment made them).
        steps = front_steps(config, main_config)
        total = len(steps) + 5
        for number, step in enumerate(steps, 1):
            timings[" ".join(step.argv[:2])] = round(stack.run(step, number, total, rerun=RERUN), 1)
        os.environ.update(stack.env)  # the in-process stages read the same settings as the processes
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        store = open_store(stack.store_settings)
        main = train_run(store, config, config.seeds[0])  # the extraction arm pairs with the main seed
        tokenize = main.upstream("tokenize")

        def timed(label: str, number: int, stage, settings) -> Manifest:
            console.rule(f"[bold]{number}/{total} {label}")
            t0 = time.monotonic()
            manifest, ran = stage.run(store, settings, force=force)
            timings[label] = round(time.monotonic() - t0, 1)
            console.print(f"{manifest.stage}: {'published' if ran else 'unchanged'} {manifest.run}")
            return manifest

        n = len(steps)
        items = timed("probe items", n + 1, probe_items, load(EvaluatorSettings))
        qa = timed("QA text for the qa_exposed half", n + 2, extract_qa,
                   load(EvaluatorSettings, extract={"items_run": items.run}))
        tokens = timed("token shards: the training split plus the QA text, the main tokenizer", n + 3, extract_tokens,
                       load(ProcessorSettings, extract={"qa_run": qa.run, "tokenize_run": tokenize}))
        extract_config = work / "experiment-extract-train.yaml"
        extract_config.write_text(yaml.safe_dump(config.train | {"tokens_run": tokens.run}))
        lanes = seed_lanes(stack, config, main_config, extract_config, force)
        training = Step(f"train the extraction model ({config.train.get('preset')}, the main run's settings)",
                        ("train", "--config", str(extract_config)), {"ALS_SEED": str(config.seeds[0])})
        timings["training (extraction model)"] = round(stack.run(training, n + 4, total, force, rerun=RERUN), 1)
        extraction = train_run(store, config, config.seeds[0], tokens)
        # Each kept checkpoint exported, served, asked and scored as make experiment does (the main model's runs
        # are make experiment's own, found by fingerprint); the base condition's score runs are the QA measure.
        console.rule(f"[bold]{n + 5}/{total} both models' checkpoints asked as base models; probe and QA, paired")
        chain = Chain(store, config.limit, force)
        base = {label: {kept["name"]: chain.checkpoint(run, kept)["base_score_run"]
                        for kept in run.metrics.get("checkpoints") or []}
                for label, run in (("main", main), ("extract", extraction))}
        timings.update({f"{k} (both models)": v for k, v in chain.timings.items()})
        for lane in lanes:
            for step, code, seconds in lane.join():
                timings[f"{step.title} (background)"] = seconds
                if code != 0:  # trained again here, where a failure stops with its error
                    console.print(f"[yellow]{step.title} failed in the background (exit {code}, see {lane.log}); "
                                  "training it here[/yellow]")
                    timings[step.title] = round(stack.run(step, n + 4, total, force, rerun=RERUN), 1)
        if config.alone_threads:  # the trainings are done: the probe gets both cores
            import torch

            torch.set_num_threads(config.alone_threads)
        others = config.seeds[1:]
        measured = timed("probe and QA, both models, both halves", n + 5, extract_measure,
                         load(EvaluatorSettings, extract={
                             "main_train_run": main.run, "extract_train_run": extraction.run,
                             "main_seed_runs": [train_run(store, config, s).run for s in others],
                             "extract_seed_runs": [train_run(store, config, s, tokens).run for s in others],
                             "main_base_scores": base["main"], "extract_base_scores": base["extract"]}))
        t0 = time.monotonic()
        stack.run(Step("write the report", ("report",)), total, total, rerun=RERUN)
        timings["report"] = round(time.monotonic() - t0, 1)
        report_run = show_report(store, stack.root / "report")

        console.rule("[bold green]ALS-LM extraction arm finished")
        for name, test in measured.metrics["tests"].items():
            difference = "undefined" if test["difference"] is None else f"{100 * test['difference']:+.1f} pp"
            console.print(f"  {name}: {difference} (Holm-adjusted p {test['p_holm']:.3g})")
        elapsed = round(time.monotonic() - started, 1)
        console.print(f"total time: {elapsed:.0f}s; by stage: " + ", ".join(f"{k} {v:.0f}s" for k, v in timings.items()))
        (stack.root / "timings-extract.json").write_text(json.dumps(
            {"total_s": elapsed, "stages_s": timings, "extract_measure_run": measured.run}, indent=2))
        console.print(f"results: {measured.run}; report: {stack.root / 'report' / 'report.html'} ({report_run})")
