"""Time BPE tokenizer training (design §3.3 settings) on a processed corpus, then the term
validation and the token shards, with the process's peak memory.

    python benchmarks/bench_tokenizer.py --processed volumes/bench/processed

``--processed`` is a directory holding the process stage's ``corpus.txt``, ``train.jsonl`` and
``val.jsonl`` (what bench_processing.py leaves in its ``--out``).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


@click.command()
@click.option("--processed", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--vocab-size", type=int, default=16384, show_default=True)
@click.option("--json-out", type=click.Path(path_type=Path), default=None)
@click.option("--shards/--no-shards", default=True, show_default=True,
              help="Also write the token shards (they cost more than training).")
def main(processed: Path, vocab_size: int, json_out: Path | None, shards: bool) -> None:
    from services.processor.terms import load_terms
    from services.processor.tokenizer import train_bpe, validate_terms, write_shard

    corpus = processed / "corpus.txt"
    timings = {}

    t0, c0 = time.perf_counter(), cpu()
    tokenizer = train_bpe(corpus, vocab_size, min_frequency=2)
    timings["train"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu() - c0, 1)}

    t0, c0 = time.perf_counter(), cpu()
    report = validate_terms(tokenizer, load_terms(), fragment_tokens=2)
    timings["validate_terms"] = {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(cpu() - c0, 2)}

    n_train = n_val = None
    if shards:
        t0, c0 = time.perf_counter(), cpu()
        n_train = write_shard(tokenizer, processed / "train.jsonl", processed / "train.bin")
        n_val = write_shard(tokenizer, processed / "val.jsonl", processed / "val.bin")
        timings["shards"] = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu() - c0, 1)}

    results = {
        "corpus_mb": round(corpus.stat().st_size / 2**20, 1),
        "requested_vocab": vocab_size,
        "actual_vocab": tokenizer.get_vocab_size(),
        "fragmented_fraction": report["fragmented_fraction"],
        "train_tokens": n_train,
        "val_tokens": n_val,
        "bytes_per_token": round(corpus.stat().st_size / n_train, 2) if n_train else None,
        **timings,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    click.echo(json.dumps(results, indent=2))
    if json_out:
        json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
