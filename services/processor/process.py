"""The process stage's body: raw JSONL in, the contract's files out (docs/processing.md).

Documents stream through the steps into a scratch file; only ids, categories and sizes stay in
memory until the split is known, then a second pass writes train/val/corpus.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from services.processor.clean import Abbreviations, MinLength, Normalize, StripMarkup
from services.processor.dedup import MinHashSignature, NearDedup, ParagraphDedup
from services.processor.pipeline import RunLog, Step, run
from services.processor.quality import QualityReport
from services.processor.reader import read_raw
from services.processor.residue import Residue
from services.processor.settings import ProcessConfig
from services.processor.split import validation_ids
from services.processor.stats import CorpusStats, render_markdown
from services.processor.volatile import VolatileFilter
from shared.errors import InvalidInput

OUTPUTS = ("train.jsonl", "val.jsonl", "corpus.txt", "excluded.jsonl", "stats.json", "stats.md")


def build_steps(cfg: ProcessConfig) -> list[Step]:
    """The seed's steps in the order they run. Per-document work comes first so it can fan out to
    workers; parsing residue (dropped citations, figure references, links, back matter) is cleaned
    once the text is normalised, and volatile sentences go before dedup so pages that differ only by a "last updated"
    line are seen as the duplicates they are; length is checked last, after dedup shortened texts."""
    return [
        StripMarkup(),
        Normalize(),
        Residue(),
        VolatileFilter(cfg.volatile_patterns),
        Abbreviations(),
        MinHashSignature(cfg.num_perm, cfg.shingle_words),
        NearDedup(cfg.minhash_threshold, cfg.num_perm),
        ParagraphDedup(cfg.paragraph_min_words),
        MinLength(cfg.min_tokens),
    ]


def process_corpus(raw: list[Path], out: Path, cfg: ProcessConfig, seed: int, terms: list[str]) -> dict[str, Any]:
    """Write ``OUTPUTS`` into ``out``; return the statistics plus ``step_seconds`` (CPU seconds per
    step, not in ``stats.json``). Raises ValueError when nothing survives."""
    if not raw:
        raise InvalidInput("no raw document files to process")
    out.mkdir(parents=True, exist_ok=True)
    kept_path = out / "kept.jsonl.tmp"
    index: list[tuple[str, str]] = []
    # Measured as documents leave the pipeline, in the main process while the workers are busy,
    # rather than in the single-threaded second pass (only the statistics' split sizes wait for it).
    quality = QualityReport(seed)
    stats = CorpusStats(terms)
    with open(out / "excluded.jsonl", "w", encoding="utf-8") as excluded, \
            open(kept_path, "w", encoding="utf-8") as kept:
        log = RunLog(excluded)
        for doc in run(build_steps(cfg), read_raw(raw, log), log, workers=cfg.workers):
            kept.write(doc.clean().model_dump_json() + "\n")
            index.append((doc.id, doc.category))
            quality.add(doc.id, doc.source, doc.text)
            stats.add(doc)
    steps = log.stats.as_dict()
    read = steps.get("read", {})
    if not read.get("documents_out"):
        kept_path.unlink()
        raise InvalidInput(
            f"no valid documents in {len(raw)} raw file(s) ({read.get('lines', 0)} non-empty lines); "
            f"reasons: {_reasons(read) or 'the files are empty'}"
        )
    if not index:
        kept_path.unlink()
        raise InvalidInput(f"every document was removed by processing: {json.dumps(steps)}")

    start = time.process_time()
    val = validation_ids(index, cfg.val_fraction, seed)
    with open(kept_path, encoding="utf-8") as kept, \
            open(out / "train.jsonl", "w", encoding="utf-8") as train, \
            open(out / "val.jsonl", "w", encoding="utf-8") as valf, \
            open(out / "corpus.txt", "w", encoding="utf-8") as corpus:
        first = True
        for line in kept:
            doc = json.loads(line)
            split = "val" if doc["id"] in val else "train"
            (valf if split == "val" else train).write(line)
            if split == "train":
                corpus.write(("" if first else "\n\n") + doc["text"])
                first = False
            stats.assign(doc["id"], split)
        corpus.write("\n")
    kept_path.unlink()
    summary = {**stats.summary(steps), "quality": quality.summary(steps)}
    (out / "stats.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "stats.md").write_text(render_markdown(summary), encoding="utf-8")
    log.seconds["split_and_stats"] = time.process_time() - start
    return {**summary, "step_seconds": {k: round(v, 2) for k, v in log.seconds.items()}}


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k.split(':', 1)[1]} {v}" for k, v in counts.items() if ":" in k)
