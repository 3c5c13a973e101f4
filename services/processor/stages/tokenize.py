"""The ``tokenize`` stage: train and validate the BPE tokenizer on the latest processed corpus and
write the token shards (docs/processing.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from services.processor.settings import ProcessorSettings
from services.processor.terms import TERMS_FILE, load_terms
from services.processor.tokenizer import choose_tokenizer, render_validation, write_shard
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.corpus import TokenShardsMeta
from shared.store import ArtifactStore, sha256_file

log = logging.getLogger(__name__)


def run(store: ArtifactStore, settings: ProcessorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    source = runs.latest(store, "process")
    inputs = runs.inputs_from(source, ["corpus.txt", "train.jsonl", "val.jsonl"])
    cfg = settings.tokenizer
    fingerprinted = stages.fingerprint_settings("tokenize", settings, medical_terms_sha256=sha256_file(TERMS_FILE))

    def body(writer: RunWriter, scratch: Path) -> None:
        files = {ref.name: runs.fetch(store, ref, scratch / ref.name) for ref in inputs}
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

    return runs.run_stage(store, "tokenize", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
