"""The ``probe-scratch`` stage (``als-lm probe run``): score the probe items on the from-scratch model in
process, at every kept checkpoint and probe snapshot of a train run and of the runs of its other seeds, at
each one's initialisation, and on unigram and bigram models of the same training tokens (docs/probe.md)."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import torch

from services.evaluator import probe as probe_package
from services.evaluator.probe.backend import ProbeBackend
from services.evaluator.probe.backends.ngram import NgramBackend
from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.score import curve, score_items, summarise
from services.evaluator.probe.tokens import ProbeTokenizer
from services.evaluator.settings import EvaluatorSettings
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.probe import ProbeItem, ProbeSystem
from shared.store import ArtifactStore

log = logging.getLogger(__name__)
INIT, NGRAMS = "scratch@init", ("ngram-1", "ngram-2")
BASELINES = (*NGRAMS, INIT)


def probe_sha256() -> str:
    """The scoring code's identity (every module of the probe package): a changed rule re-scores."""
    digest = hashlib.sha256()
    root = Path(probe_package.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def resolve(store: ArtifactStore, ref: str | None, stage: str) -> Manifest:
    run = runs.resolve(store, ref or stage)
    if run.stage != stage:
        raise InvalidInput(f"{ref!r} is a {run.stage} run, not a {stage} run")
    return run


def read_items(path: Path) -> list[ProbeItem]:
    return [ProbeItem.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def seed_of(train_run: Manifest) -> int:
    if "seed" not in train_run.settings:
        raise InvalidInput(f"{train_run.run} records no seed in its settings: it is not a train stage's run")
    return int(train_run.settings["seed"])


def points(train_run: Manifest, prefix: str = "") -> list[tuple[ProbeSystem, str]]:
    """The run's points of training in step order, each the system and its output: every kept checkpoint
    and every probe snapshot (the checkpoint where both were written at one step), then ``model.pt`` (the
    run's best, off the curve). ``prefix`` names another seed's systems (``seed1338/``)."""
    seed = seed_of(train_run)
    by_step: dict[int, tuple[ProbeSystem, str]] = {}
    for listing, folder in (("snapshots", "snapshots/"), ("checkpoints", "checkpoints/")):
        for info in train_run.metrics.get(listing) or []:
            output = f"{folder}{info['name']}/model.pt"
            train_run.output(output)  # a listed point that was not published stops here, by name
            by_step[info["step"]] = (ProbeSystem(name=f"{prefix}scratch@{info['name']}", kind="scratch",
                                                 step=info["step"], tokens_seen=info["tokens_seen"], seed=seed,
                                                 train_run=train_run.run, on_curve=True,
                                                 ranks_only=bool(prefix) or listing == "snapshots"), output)
    kept = {c["name"]: c for c in train_run.metrics.get("checkpoints") or []}
    best = kept.get(train_run.metrics.get("best_checkpoint", ""), {})
    final = ProbeSystem(name=f"{prefix}scratch", kind="scratch", step=best.get("step"),
                        tokens_seen=best.get("tokens_seen"), seed=seed, train_run=train_run.run, ranks_only=bool(prefix))
    return [by_step[step] for step in sorted(by_step)] + [(final, "model.pt")]


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    config = settings.probe
    items_run = resolve(store, config.items_run, "probe-items")
    main = resolve(store, config.train_run, "train")
    train_runs = [main, *(resolve(store, ref, "train") for ref in config.seed_runs)]
    tokenize_run = runs.resolve(store, main.upstream("tokenize"))
    seeds = [seed_of(t) for t in train_runs]
    if len(set(seeds)) != len(seeds):
        raise InvalidInput(f"the probed train runs repeat a seed: {dict(zip((t.run for t in train_runs), seeds))}")
    if other := [t.run for t in train_runs if t.upstream("tokenize") != tokenize_run.run]:
        raise InvalidInput(f"{', '.join(other)} trained on other tokens than {main.run} ({tokenize_run.run}): "
                           "the seeds of one curve share the corpus")
    curves = [(t, points(t, "" if t is main else f"seed{seed}/")) for t, seed in zip(train_runs, seeds)]
    inputs = [*runs.inputs_from(items_run, ["items.jsonl"]), *runs.inputs_from(main, ["tokenizer.json"]),
              *(i for t, models in curves for i in runs.inputs_from(t, [output for _, output in models])),
              *runs.inputs_from(tokenize_run, ["train.bin"])]

    def body(writer: RunWriter, scratch: Path) -> None:
        items = read_items(runs.fetch(store, items_run.output("items.jsonl"), scratch / "items.jsonl"))
        tokenizer = ProbeTokenizer(runs.fetch(store, main.output("tokenizer.json"), scratch / "tokenizer.json"))
        train_bin = runs.fetch(store, tokenize_run.output("train.bin"), scratch / "train.bin")
        results, systems = [], []

        def probe(backend: ProbeBackend, system: ProbeSystem) -> None:
            # greedy continuations where the report reads them: not the dense curve's snapshots nor the other
            # seeds, whose ranks give the curve and its spread
            t0 = time.monotonic()
            results.extend(score_items(backend, items, greedy_tokens=None if system.ranks_only else config.greedy_tokens))
            systems.append(system)
            log.info("probe-scratch: %s scored on %d items in %.1fs", system.name, len(items), time.monotonic() - t0)

        for order, name in enumerate(NGRAMS, 1):
            probe(NgramBackend(name, train_bin, tokenizer, order=order, add_k=config.ngram_add_k),
                  ProbeSystem(name=name, kind="ngram"))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        log.info("probe-scratch: %d items on %d points of %d seed(s), on %s", len(items),
                 sum(len(models) + 1 for _, models in curves), len(curves), device)
        for (train_run, models), seed in zip(curves, seeds):
            prefix = "" if train_run is main else f"seed{seed}/"
            for number, (system, output) in enumerate(models):
                path = runs.fetch(store, train_run.output(output), scratch / "model.pt")
                backend = TorchBackend.from_checkpoint(system.name, path, tokenizer, device)
                if number == 0:  # the trainer's initialisation with this run's seed: the point at zero tokens
                    probe(TorchBackend.random_init(f"{prefix}{INIT}", backend.config, tokenizer, seed, device),
                          ProbeSystem(name=f"{prefix}{INIT}", kind="scratch", step=0, tokens_seen=0, seed=seed,
                                      train_run=train_run.run, on_curve=True, ranks_only=bool(prefix)))
                probe(backend, system)
                path.unlink()
        summary = summarise(items, results, seed=settings.seed, baselines=BASELINES,
                            systems=[s.name for s in systems if not s.ranks_only])
        summary["curve"] = curve(items, results, systems, seed=settings.seed)
        writer.put_bytes("results.jsonl", "".join(r.model_dump_json() + "\n" for r in results).encode())
        writer.put_json("systems.json", [s.model_dump() for s in systems])
        writer.put_json("summary.json", summary)
        writer.metrics.update(
            items=len(items), items_run=items_run.run, train_run=main.run, train_runs=[t.run for t in train_runs],
            seeds=seeds, points=len(summary["curve"]), chance=summary["systems"][INIT]["all"]["chance"],
            accuracy={name: by["all"]["accuracy"]["estimate"] for name, by in summary["systems"].items()},
        )

    fingerprinted = stages.fingerprint_settings("probe-scratch", settings, probe_sha256=probe_sha256())
    return runs.run_stage(store, "probe-scratch", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
