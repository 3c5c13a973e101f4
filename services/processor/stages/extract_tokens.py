"""The ``extract-tokens`` stage (``als-lm extract tokens``): the main run's training split plus the
extraction arm's QA text, encoded with the main run's tokenizer (reused by its run, never retrained),
and its validation shard as it is, so the extraction model differs from the main one only by the QA text
(docs/extract.md)."""

from __future__ import annotations

import random
from pathlib import Path

from tokenizers import Tokenizer

from services.processor.settings import ProcessorSettings
from services.processor.tokenizer import write_shard
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.corpus import TokenShardsMeta
from shared.store import ArtifactStore


def _resolve(store: ArtifactStore, ref: str | None, stage: str) -> Manifest:
    run = runs.resolve(store, ref or stage)
    if run.stage != stage:
        raise InvalidInput(f"{ref!r} is a {run.stage} run, not a {stage} run")
    return run


def run(store: ArtifactStore, settings: ProcessorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    cfg = settings.extract
    qa_run = _resolve(store, cfg.qa_run, "extract-qa")
    tokenize_run = _resolve(store, cfg.tokenize_run, "tokenize")
    process_run = runs.resolve(store, tokenize_run.upstream("process"))
    if qa_run.upstream("process") != process_run.run:
        raise InvalidInput(f"{qa_run.run} was written from another corpus than {tokenize_run.run}")
    inputs = [*runs.inputs_from(qa_run, ["documents.jsonl"]), *runs.inputs_from(process_run, ["train.jsonl"]),
              *runs.inputs_from(tokenize_run, ["tokenizer.json", "val.bin", "meta.json"])]

    def body(writer: RunWriter, scratch: Path) -> None:
        files = {ref.name: runs.fetch(store, ref, scratch / ref.name) for ref in inputs}
        meta = TokenShardsMeta.model_validate_json(files["meta.json"].read_text())
        # The QA documents among the training documents at seeded places, as a corpus document would be.
        lines = files["train.jsonl"].read_text(encoding="utf-8").splitlines()
        qa = files["documents.jsonl"].read_text(encoding="utf-8").splitlines()
        rng = random.Random(settings.seed)
        for line in qa:
            lines.insert(rng.randrange(len(lines) + 1), line)
        mixed = scratch / "mixed.jsonl"
        mixed.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tokenizer = Tokenizer.from_file(str(files["tokenizer.json"]))
        n_train = write_shard(tokenizer, mixed, scratch / "train.bin")
        for name in ("tokenizer.json", "val.bin"):
            writer.put_file(name, files[name])
        writer.put_file("train.bin", scratch / "train.bin")
        shards = meta.model_copy(update={"n_train_tokens": n_train})
        writer.put_bytes("meta.json", shards.model_dump_json(indent=2).encode() + b"\n")
        writer.metrics.update(n_train_tokens=n_train, n_corpus_tokens=meta.n_train_tokens,
                              n_qa_tokens=n_train - meta.n_train_tokens, qa_documents=len(qa),
                              tokenize_run=tokenize_run.run, qa_run=qa_run.run)

    fingerprinted = stages.fingerprint_settings("extract-tokens", settings)
    return runs.run_stage(store, "extract-tokens", fingerprinted, inputs, body, work_dir=settings.work_dir,
                          force=force)
