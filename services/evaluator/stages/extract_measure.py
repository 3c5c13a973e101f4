"""The ``extract-measure`` stage: the main model and the extraction model (trained on the same shards plus
the QA text of the ``qa_exposed`` half) on both halves at each kept checkpoint, paired on the same items: the
probe in process, for every training seed, and QA from each checkpoint's ``score-scratch_base`` run of the
first seed, asked as the main experiment asks (services/evaluator/extract/measure.py, docs/extract.md)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from services.evaluator.extract import measure
from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.tokens import ProbeTokenizer
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.stages.probe import read_items, resolve
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.eval import Response, ScoreFile
from shared.store import ArtifactStore

log = logging.getLogger(__name__)


def kept(train_run: Manifest) -> dict[str, dict]:
    return {c["name"]: c for c in train_run.metrics.get("checkpoints", [])}


def pair_runs(store: ArtifactStore, main: Manifest, extract: Manifest) -> tuple[Manifest, list[str]]:
    """The extraction run's QA run, and the checkpoints both runs kept; refuses two runs that differ in
    anything but the QA text (tokenizer, settings, kept steps)."""
    tokens = runs.resolve(store, extract.upstream("extract-tokens"))
    if tokens.upstream("tokenize") != main.upstream("tokenize"):
        raise InvalidInput(f"{extract.run} was not trained on {main.run}'s token shards plus QA text: "
                           f"its tokens come from {tokens.upstream('tokenize')}, the main run's from "
                           f"{main.upstream('tokenize')}")
    if extract.settings != main.settings:
        raise InvalidInput(f"{extract.run} and {main.run} were trained with different settings")
    names = [n for n in kept(main) if n in kept(extract)]
    if not names:
        raise InvalidInput(f"{main.run} and {extract.run} kept no checkpoint in common (train.keep_at_fractions)")
    return runs.resolve(store, tokens.upstream("extract-qa")), names


def export_of(store: ArtifactStore, scored: Manifest) -> Manifest:
    asked = runs.resolve(store, scored.input("responses.jsonl").run)
    return runs.resolve(store, runs.resolve(store, asked.upstream("serve")).upstream("export"))


def base_scores(store: ArtifactStore, named: dict[str, str], train: Manifest, names: list[str]) -> dict[str, Manifest]:
    """Checkpoint -> its score-scratch_base run, each checked to score ``train``'s model at that checkpoint."""
    found = {}
    for name in names:
        if name not in named:
            raise InvalidInput(f"no score-scratch_base run named for checkpoint {name} of {train.run}")
        scored = resolve(store, named[name], "score-scratch_base")
        export = export_of(store, scored)
        if export.upstream("train") != train.run or export.settings["export"].get("checkpoint") != name:
            raise InvalidInput(f"{scored.run} scores another model than checkpoint {name} of {train.run}")
        found[name] = scored
    return found


def code_sha256() -> str:
    return hashlib.sha256(Path(measure.__file__).read_bytes()).hexdigest()


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    cfg = settings.extract
    if not (cfg.main_train_run and cfg.extract_train_run):
        raise InvalidInput("extract-measure needs both train runs: extract.main_train_run and "
                           "extract.extract_train_run (als-lm experiment-extract names them)")
    main, extract = resolve(store, cfg.main_train_run, "train"), resolve(store, cfg.extract_train_run, "train")
    qa_run, names = pair_runs(store, main, extract)
    if len(cfg.main_seed_runs) != len(cfg.extract_seed_runs):
        raise InvalidInput(f"extract.main_seed_runs names {len(cfg.main_seed_runs)} runs, extract.extract_seed_runs "
                           f"{len(cfg.extract_seed_runs)}: each other seed needs both models")
    # (main, extraction) per seed, the first seed's first: the other seeds' pairs are probed only
    pairs = [(main, extract), *((resolve(store, m, "train"), resolve(store, e, "train"))
                                for m, e in zip(cfg.main_seed_runs, cfg.extract_seed_runs))]
    for other_main, other_extract in pairs[1:]:
        if pair_runs(store, other_main, other_extract) != (qa_run, names) or other_main.upstream("tokenize") != \
                main.upstream("tokenize"):
            raise InvalidInput(f"{other_main.run} and {other_extract.run} are not another seed of {main.run} and "
                               f"{extract.run}: other shards, QA text or kept checkpoints")
    seeds = [m.settings["seed"] for m, _ in pairs]
    if len(set(seeds)) != len(seeds):
        raise InvalidInput(f"the seeds' train runs repeat a seed: {seeds}")
    items_run = runs.resolve(store, qa_run.upstream("probe-items"))
    scored = {"main": base_scores(store, cfg.main_base_scores, main, names),
              "extract": base_scores(store, cfg.extract_base_scores, extract, names)}
    inputs = [*runs.inputs_from(qa_run, ["split.json"]), *runs.inputs_from(items_run, ["items.jsonl"]),
              *runs.inputs_from(main, ["tokenizer.json"]),
              *(ref for pair in pairs for run in pair
                for ref in runs.inputs_from(run, [f"checkpoints/{n}/model.pt" for n in names])),
              *(ref for by in scored.values() for run in by.values()
                for ref in [*runs.inputs_from(run, ["scores.json"]), run.input("responses.jsonl")])]

    def body(writer: RunWriter, scratch: Path) -> None:
        halves = json.loads(runs.fetch(store, qa_run.output("split.json"), scratch / "split.json").read_text())
        items = [i for i in read_items(runs.fetch(store, items_run.output("items.jsonl"), scratch / "items.jsonl"))
                 if i.benchmark_id in halves]
        tokenizer = ProbeTokenizer(runs.fetch(store, main.output("tokenizer.json"), scratch / "tokenizer.json"))
        outcomes = []
        for seed, pair in zip(seeds, pairs):
            for label, run in zip(("main", "extract"), pair):
                for name in names:
                    path = runs.fetch(store, run.output(f"checkpoints/{name}/model.pt"), scratch / "model.pt")
                    backend = TorchBackend.from_checkpoint(f"{label}@{name}", path, tokenizer)
                    outcomes += measure.probe_outcomes(backend, label, seed, name, items, halves,
                                                       settings.probe.greedy_tokens)
                    path.unlink()
                    if seed != seeds[0]:
                        continue
                    score_run = scored[label][name]
                    scores = ScoreFile.model_validate_json(
                        runs.fetch(store, score_run.output("scores.json"), scratch / "scores.json").read_text())
                    responses = [Response.model_validate_json(line) for line in runs.fetch(
                        store, score_run.input("responses.jsonl"), scratch / "responses.jsonl").read_text().splitlines()
                        if line]
                    outcomes += measure.qa_outcomes(scores, responses, label, seed, name, halves)
                    log.info("extract-measure: %s %s: %d answers of %s", label, name, len(scores.items), score_run.run)
                log.info("extract-measure: %s seed %d probed on %d items at %d checkpoints", label, seed, len(items),
                         len(names))
        summary = measure.summarise(outcomes, names, {i.id: i.benchmark_id for i in items}, seeds, seed=settings.seed)
        summary |= {"main_train_run": main.run, "extract_train_run": extract.run, "qa_run": qa_run.run,
                    "seed_train_runs": [[m.run, e.run] for m, e in pairs[1:]],
                    "tokens_seen": {n: kept(main)[n]["tokens_seen"] for n in names},
                    "base_scores": {label: {n: r.run for n, r in by.items()} for label, by in scored.items()},
                    "qa_pairs": qa_run.metrics.get("pairs"), "qa_dropped": qa_run.metrics.get("dropped")}
        writer.put_bytes("results.jsonl", "".join(o.model_dump_json() + "\n" for o in outcomes).encode())
        writer.put_json("summary.json", summary)
        last = names[-1]
        writer.metrics.update(
            main_train_run=main.run, checkpoints=names, probe_items=len(items), seeds=seeds,
            accuracy={key: rate["estimate"] for key, rate in summary["rates"].items() if f"|{last}|" in key},
            tests={t["name"]: {"difference": t["difference"]["estimate"], "p_holm": t["p_holm"]}
                   for t in summary["tests"]},
        )

    fingerprint = stages.fingerprint_settings("extract-measure", settings, code_sha256=code_sha256(),
                                              greedy_tokens=settings.probe.greedy_tokens)
    return runs.run_stage(store, "extract-measure", fingerprint, inputs, body, work_dir=settings.work_dir, force=force)
