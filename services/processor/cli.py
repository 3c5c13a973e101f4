"""``als-lm process`` and ``als-lm tokenize``: read the previous stage's run, publish their own."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from services.processor.settings import ProcessorSettings
from services.processor.terms import TERMS_FILE, load_terms
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.corpus import TokenShardsMeta
from shared.settings import load
from shared.store import ArtifactStore, open_store, sha256_file

log = logging.getLogger(__name__)

FORCE = click.option("--force", is_flag=True, help="Run even when an identical run is already published.")


def _report(stage: str, manifest: Manifest, ran: bool) -> None:
    if ran:
        click.echo(f"{stage}: published {manifest.run}")
    else:
        click.echo(f"{stage}: skipped (unchanged), see {manifest.run}")


def scrape_inputs(store: ArtifactStore) -> list[InputRef]:
    """All outputs of the latest run of every ``scrape-*`` stage in the store."""
    stages = [s for s in runs.stages(store) if s.startswith("scrape-")]
    if not stages:
        raise RunNotFound(f"no published scrape-* run in {store.description}; run `als-lm scrape sample` first")
    inputs: list[InputRef] = []
    for stage in stages:
        inputs += runs.inputs_from(runs.latest(store, stage))
    return inputs


@click.command()
@FORCE
def process(force: bool) -> None:
    """Clean, deduplicate, filter and split the latest raw corpus of every scraper (docs/processing.md)."""
    from services.processor.process import OUTPUTS, process_corpus

    settings = load(ProcessorSettings)
    store = open_store(settings.store)
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

    manifest, ran = runs.run_stage(store, "process", fingerprinted, inputs, body,
                                   work_dir=settings.work_dir, force=force)
    _report("process", manifest, ran)


@click.command()
@FORCE
def tokenize(force: bool) -> None:
    """Train and validate the BPE tokenizer on the latest processed corpus; write token shards (docs/processing.md)."""
    from services.processor.tokenizer import choose_tokenizer, render_validation, write_shard

    settings = load(ProcessorSettings)
    store = open_store(settings.store)
    source = runs.latest(store, "process")
    inputs = runs.inputs_from(source, ["corpus.txt", "train.jsonl", "val.jsonl"])
    cfg = settings.tokenizer
    fingerprinted = stages.fingerprint_settings("tokenize", settings, medical_terms_sha256=sha256_file(TERMS_FILE))

    def body(writer: RunWriter, scratch: Path) -> None:
        files = {ref.key.rsplit("/", 1)[1]: runs.fetch(store, ref, scratch / ref.key.rsplit("/", 1)[1])
                 for ref in inputs}
        if files["corpus.txt"].stat().st_size <= 1:
            raise InvalidInput(f"corpus.txt of {source.run} is empty: nothing to train a tokenizer on")
        tokenizer, report = choose_tokenizer(files["corpus.txt"], cfg, load_terms())
        log.info("tokenizer: %s", report["decision"])
        tok_path = scratch / "tokenizer.json"
        tokenizer.save(str(tok_path))
        n_train = write_shard(tokenizer, files["train.jsonl"], scratch / "train.bin")
        n_val = write_shard(tokenizer, files["val.jsonl"], scratch / "val.bin")
        meta = TokenShardsMeta(
            vocab_size=tokenizer.get_vocab_size(),
            eos_id=tokenizer.token_to_id("<|eos|>"),
            bos_id=tokenizer.token_to_id("<|bos|>"),
            pad_id=tokenizer.token_to_id("<|pad|>"),
            n_train_tokens=n_train,
            n_val_tokens=n_val,
            tokenizer_sha256=sha256_file(tok_path),
        )
        writer.put_file("tokenizer.json", tok_path)
        writer.put_bytes("validation.md", render_validation(report, cfg.fragment_tokens).encode())
        writer.put_json("validation.json", report)
        writer.put_file("train.bin", scratch / "train.bin")
        writer.put_file("val.bin", scratch / "val.bin")
        writer.put_bytes("meta.json", meta.model_dump_json(indent=2).encode() + b"\n")
        writer.metrics.update({
            "vocab_size": meta.vocab_size,
            "n_train_tokens": n_train,
            "n_val_tokens": n_val,
            "fragmented_fraction": report["attempts"][-1]["fragmented_fraction"],
            "decision": report["decision"],
        })

    manifest, ran = runs.run_stage(store, "tokenize", fingerprinted, inputs, body,
                                   work_dir=settings.work_dir, force=force)
    _report("tokenize", manifest, ran)
