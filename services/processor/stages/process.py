"""The ``process`` stage: clean, deduplicate, filter and split the latest raw corpus of every
scraper (docs/processing.md)."""

from __future__ import annotations

from pathlib import Path

from services.processor.process import OUTPUTS, process_corpus
from services.processor.settings import ProcessorSettings
from services.processor.terms import TERMS_FILE, load_terms
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.store import ArtifactStore, sha256_file


def scrape_inputs(store: ArtifactStore) -> list[InputRef]:
    """All outputs of the latest run of every ``scrape-*`` stage in the store."""
    scrapers = [s for s in runs.stages(store) if s.startswith("scrape-")]
    if not scrapers:
        raise RunNotFound(f"no published scrape-* run in {store.description}; run `als-lm scrape sample` first")
    inputs: list[InputRef] = []
    for stage in scrapers:
        inputs += runs.inputs_from(runs.latest(store, stage))
    return inputs


def run(store: ArtifactStore, settings: ProcessorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    inputs = scrape_inputs(store)
    docs = [i for i in inputs if i.name.startswith("docs/") and i.name.endswith(".jsonl")]
    if not docs:
        raise InvalidInput(
            "the latest scrape runs have no docs/*.jsonl outputs: "
            + ", ".join(sorted({i.run for i in inputs}))
        )
    cfg = settings.process
    fingerprinted = stages.fingerprint_settings("process", settings, medical_terms_sha256=sha256_file(TERMS_FILE))

    def body(writer: RunWriter, scratch: Path) -> None:
        raw = [runs.fetch(store, ref, scratch / "raw" / ref.key) for ref in docs]
        summary = process_corpus(raw, scratch / "out", cfg, settings.seed, [t for _, t in load_terms()])
        for name in OUTPUTS:
            writer.put_file(name, scratch / "out" / name)
        writer.metrics.update({
            "documents": summary["total"]["documents"],
            "train_documents": summary["by_split"]["train"]["documents"],
            "val_documents": summary["by_split"]["val"]["documents"],
            "bytes": summary["total"]["bytes"],
            "tokens": summary["total"]["tokens"],
            "step_seconds": summary["step_seconds"],
        })

    return runs.run_stage(store, "process", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
