"""The ``probe-scratch`` stage (``als-lm probe run``): score the probe items on the from-scratch model in
process, at every kept checkpoint of a train run and at its initialisation, and on unigram and bigram
models of the same training tokens (docs/probe.md)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from services.evaluator import probe as probe_package
from services.evaluator.probe.backend import ProbeBackend
from services.evaluator.probe.backends.ngram import NgramBackend
from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.score import score_item, summarise
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


def checkpoints(train_run: Manifest) -> list[tuple[ProbeSystem, str]]:
    """Every kept checkpoint in step order, then ``model.pt`` (the run's best): the system and its output."""
    kept = {c["name"]: c for c in train_run.metrics.get("checkpoints", [])}
    found = []
    for ref in train_run.outputs_under("checkpoints/"):
        name = ref.name.split("/")[1]
        info = kept.get(name, {})
        found.append((ProbeSystem(name=f"scratch@{name}", kind="scratch", step=info.get("step"),
                                  tokens_seen=info.get("tokens_seen")), ref.name))
    found.sort(key=lambda s: (s[0].step is None, s[0].step or 0, s[0].name))
    best = kept.get(train_run.metrics.get("best_checkpoint", ""), {})
    found.append((ProbeSystem(name="scratch", kind="scratch", step=best.get("step"),
                              tokens_seen=best.get("tokens_seen")), "model.pt"))
    return found


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    config = settings.probe
    items_run = resolve(store, config.items_run, "probe-items")
    train_run = resolve(store, config.train_run, "train")
    tokenize_run = runs.resolve(store, train_run.upstream("tokenize"))
    models = checkpoints(train_run)
    inputs = [*runs.inputs_from(items_run, ["items.jsonl"]),
              *runs.inputs_from(train_run, ["tokenizer.json", *(output for _, output in models)]),
              *runs.inputs_from(tokenize_run, ["train.bin"])]

    def body(writer: RunWriter, scratch: Path) -> None:
        items = read_items(runs.fetch(store, items_run.output("items.jsonl"), scratch / "items.jsonl"))
        tokenizer = ProbeTokenizer(runs.fetch(store, train_run.output("tokenizer.json"), scratch / "tokenizer.json"))
        train_bin = runs.fetch(store, tokenize_run.output("train.bin"), scratch / "train.bin")
        results, systems = [], []

        def probe(backend: ProbeBackend, system: ProbeSystem) -> None:
            results.extend(score_item(backend, item, greedy_tokens=config.greedy_tokens) for item in items)
            systems.append(system)
            log.info("probe-scratch: %s scored on %d items", system.name, len(items))

        for order, name in enumerate(NGRAMS, 1):
            probe(NgramBackend(name, train_bin, tokenizer, order=order, add_k=config.ngram_add_k),
                  ProbeSystem(name=name, kind="ngram"))
        shape = None
        for system, output in models:
            path = runs.fetch(store, train_run.output(output), scratch / "model.pt")
            backend = TorchBackend.from_checkpoint(system.name, path, tokenizer)
            if shape is None:
                shape = backend.config
                probe(TorchBackend.random_init(INIT, shape, tokenizer, settings.seed),
                      ProbeSystem(name=INIT, kind="scratch", step=0, tokens_seen=0))
            probe(backend, system)
            path.unlink()
        summary = summarise(items, results, seed=settings.seed, baselines=BASELINES)
        writer.put_bytes("results.jsonl", "".join(r.model_dump_json() + "\n" for r in results).encode())
        writer.put_json("systems.json", [s.model_dump() for s in systems])
        writer.put_json("summary.json", summary)
        writer.metrics.update(
            items=len(items), items_run=items_run.run, train_run=train_run.run,
            chance=summary["systems"][INIT]["all"]["chance"],
            accuracy={name: by["all"]["accuracy"]["estimate"] for name, by in summary["systems"].items()},
        )

    fingerprinted = stages.fingerprint_settings("probe-scratch", settings, probe_sha256=probe_sha256())
    return runs.run_stage(store, "probe-scratch", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
