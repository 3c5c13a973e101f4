"""The ``probe-items`` stage (``als-lm probe items``): cloze items from the benchmark's key facts and the
latest ``process`` run's training and validation splits (docs/probe.md)."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path

from services.evaluator.inputs import load_benchmark
from services.evaluator.probe import items as rules
from services.evaluator.probe.items import Corpus, build_items
from services.evaluator.score import benchmark_input
from services.evaluator.scoring.entities import ENTITIES_FILE
from services.evaluator.settings import EvaluatorSettings
from shared import runs, stages
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.corpus import CleanDocument
from shared.store import ArtifactStore

log = logging.getLogger(__name__)


def rules_sha256() -> str:
    """The item rules' identity (the module and the typed entity list): a changed rule rebuilds the items."""
    digest = hashlib.sha256()
    for path in (Path(rules.__file__), ENTITIES_FILE):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def read_documents(path: Path) -> list[CleanDocument]:
    return [CleanDocument.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    process_run = runs.latest(store, "process")
    inputs = [benchmark_input(settings.eval.benchmark), *runs.inputs_from(process_run, ["train.jsonl", "val.jsonl"])]

    def body(writer: RunWriter, scratch: Path) -> None:
        benchmark = load_benchmark(settings.eval.benchmark)
        train, validation = (read_documents(runs.fetch(store, process_run.output(name), scratch / name))
                             for name in ("train.jsonl", "val.jsonl"))
        built = build_items(benchmark, Corpus(train, validation), k=settings.probe.distractors, seed=settings.seed)
        writer.put_bytes("items.jsonl", "".join(i.model_dump_json() + "\n" for i in built.items).encode())
        facts = {(i.benchmark_id, i.fact_index) for i in built.items}
        writer.metrics.update(
            items=len(built.items), facts=len(facts), candidates=settings.probe.distractors + 1,
            by_form=dict(Counter(i.form for i in built.items)), by_bucket=dict(Counter(i.bucket for i in built.items)),
            by_type=dict(Counter(i.value_type for i in built.items)),
            unseen_facts=len({(i.benchmark_id, i.fact_index) for i in built.items if not i.in_train}),
            skipped_facts=dict(built.skipped),
        )
        log.info("probe-items: %d items of %d key facts; skipped %s", len(built.items), len(facts),
                 dict(built.skipped) or "none")

    fingerprinted = stages.fingerprint_settings("probe-items", settings, rules_sha256=rules_sha256())
    return runs.run_stage(store, "probe-items", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
