"""The ``extract-qa`` stage (``als-lm extract qa``): the probed facts split into two halves, and QA text
written from the training sentences that state the ``qa_exposed`` half (services/evaluator/extract/qa.py)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from pathlib import Path

from services.evaluator.extract import qa as rules
from services.evaluator.inputs import load_benchmark
from services.evaluator.score import benchmark_input
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.stages.probe import read_items, resolve
from services.evaluator.stages.probe_items import read_documents
from shared import runs, stages
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.store import ArtifactStore

log = logging.getLogger(__name__)


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    items_run = resolve(store, settings.extract.items_run, "probe-items")
    process_run = runs.resolve(store, items_run.upstream("process"))
    inputs = [benchmark_input(settings.eval.benchmark), *runs.inputs_from(items_run, ["items.jsonl"]),
              *runs.inputs_from(process_run, ["train.jsonl"])]

    def body(writer: RunWriter, scratch: Path) -> None:
        items = read_items(runs.fetch(store, items_run.output("items.jsonl"), scratch / "items.jsonl"))
        train = read_documents(runs.fetch(store, process_run.output("train.jsonl"), scratch / "train.jsonl"))
        written = rules.write_pairs(items, train, load_benchmark(settings.eval.benchmark), seed=settings.seed,
                                    leak_ngram=settings.extract.leak_ngram)
        documents = rules.documents(written.pairs)
        writer.put_bytes("qa.jsonl", "".join(p.model_dump_json() + "\n" for p in written.pairs).encode())
        writer.put_bytes("documents.jsonl", "".join(d.model_dump_json() + "\n" for d in documents).encode())
        writer.put_bytes("split.json", json.dumps(written.halves, indent=1, sort_keys=True).encode())
        facts = Counter(written.halves[i.benchmark_id] for i in items if i.form == "memorisation")
        writer.metrics.update(
            pairs=len(written.pairs), documents=len(documents), words=sum(len(d.text.split()) for d in documents),
            items_by_half=dict(Counter(written.halves.values())), memorisation_facts_by_half=dict(facts),
            dropped=dict(written.dropped), items_run=items_run.run, leak_ngram=settings.extract.leak_ngram,
        )
        log.info("extract-qa: %d pairs in %d documents; dropped %s", len(written.pairs), len(documents),
                 dict(written.dropped) or "none")

    rules_sha256 = hashlib.sha256(Path(rules.__file__).read_bytes()).hexdigest()
    fingerprinted = stages.fingerprint_settings("extract-qa", settings, rules_sha256=rules_sha256)
    return runs.run_stage(store, "extract-qa", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
