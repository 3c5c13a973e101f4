"""Time the processing pipeline on a generated raw corpus, step by step, against a plain
single-loop datasketch baseline in the same run; each runs in its own process so its peak
memory (max RSS) is its own.

    python benchmarks/gen_corpus.py --size-mb 100 --out volumes/bench/raw
    python benchmarks/bench_processing.py --raw volumes/bench/raw --workers 2 --out volumes/bench/processed

The baseline is what one would write first: one loop that reads each line, NFC-normalises,
hashes paragraphs with SHA-256 and feeds word 5-gram shingles one by one into a datasketch
MinHash (SHA-1, the library default) and a MinHashLSH. It does no markup stripping, volatile
filtering, abbreviation handling, split or statistics.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def usage() -> dict[str, float]:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "cpu_s": round(me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime, 1),
        "peak_rss_mb": round(me.ru_maxrss / 1024, 1),
        "peak_worker_rss_mb": round(kids.ru_maxrss / 1024, 1),
    }


def run_pipeline(raw: list[Path], out: Path, workers: int) -> dict:
    from services.processor.process import process_corpus
    from services.processor.settings import ProcessConfig
    from services.processor.terms import load_terms

    start = time.perf_counter()
    summary = process_corpus(raw, out, ProcessConfig(workers=workers), 1337, [t for _, t in load_terms()])
    wall = time.perf_counter() - start
    steps = summary["steps"]
    return {
        "wall_s": round(wall, 1),
        **usage(),
        "documents_in": steps["read"]["documents_out"],
        "documents_out": summary["total"]["documents"],
        "near_duplicates": steps["near_dedup"].get("documents_removed:near_duplicate", 0),
        "duplicate_paragraphs": steps["paragraph_dedup"].get("paragraphs_removed:exact_duplicate", 0),
        "volatile_sentences": sum(v for k, v in steps["volatile"].items() if k.startswith("sentences_removed")),
        "step_cpu_s": summary["step_seconds"],
    }


def read_docs(raw: list[Path]) -> Iterator[dict]:
    for path in raw:
        with open(path, encoding="utf-8") as lines:
            yield from map(json.loads, lines)


def run_baseline(raw: list[Path], out: Path) -> dict:
    from datasketch import MinHash, MinHashLSH

    from services.processor.dedup import shingles
    from services.processor.settings import ProcessConfig

    cfg = ProcessConfig()
    start = time.perf_counter()
    lsh = MinHashLSH(threshold=cfg.minhash_threshold, num_perm=cfg.num_perm)
    seen: set[bytes] = set()
    n_in = kept = near = dup_paragraphs = 0
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "baseline.jsonl", "w", encoding="utf-8") as f:
        for doc in read_docs(raw):
            n_in += 1
            text = unicodedata.normalize("NFC", doc["text"])
            m = MinHash(num_perm=cfg.num_perm)
            for shingle in shingles(text, cfg.shingle_words):
                m.update(shingle)
            if lsh.query(m):
                near += 1
                continue
            lsh.insert(doc["id"], m)
            paragraphs = []
            for p in text.split("\n\n"):
                digest = hashlib.sha256(" ".join(p.split()).encode()).digest()
                if digest in seen:
                    dup_paragraphs += 1
                else:
                    seen.add(digest)
                    paragraphs.append(p)
            f.write(json.dumps({**doc, "text": "\n\n".join(paragraphs)}) + "\n")
            kept += 1
    return {"wall_s": round(time.perf_counter() - start, 1), **usage(), "documents_in": n_in,
            "documents_out": kept, "near_duplicates": near, "duplicate_paragraphs": dup_paragraphs}


def near_duplicate_recall(raw_dir: Path, out: Path) -> dict:
    """How many of the generator's planted near-duplicates (ids ``*-reissue-*``) the near-duplicate
    step removed, and how many documents it removed that were not planted.

    A planted copy that an earlier step removed (a short document's copy is as short as it) never
    reaches the near-duplicate step; ``recall`` counts over the copies that did, and
    ``recall_of_all_planted`` over all of them, so both are shown."""
    planted = json.loads((raw_dir / "planted.json").read_text())["near_duplicates"]
    documents = [r for r in map(json.loads, (out / "excluded.jsonl").open(encoding="utf-8")) if r["unit"] == "document"]
    removed = [r["doc_id"] for r in documents if r["reason"] == "near_duplicate"]
    found = sum("-reissue-" in d for d in removed)
    earlier = sum("-reissue-" in r["doc_id"] for r in documents if r["reason"] != "near_duplicate")
    return {"planted": planted, "removed_by_earlier_steps": earlier, "removed": found,
            "kept": planted - earlier - found, "recall": round(found / (planted - earlier), 4),
            "recall_of_all_planted": round(found / planted, 4), "removed_not_planted": len(removed) - found}


def child(role: str, raw_dir: Path, out: Path, workers: int) -> dict:
    """Run one side in a fresh interpreter, so peak RSS and CPU are its own."""
    cmd = [sys.executable, __file__, "--raw", str(raw_dir), "--out", str(out), "--workers", str(workers),
           "--role", role]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode:
        raise click.ClickException(f"{role} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@click.command()
@click.option("--raw", "raw_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Where the pipeline writes.")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--role", type=click.Choice(["pipeline", "baseline"]), default=None, hidden=True)
@click.option("--json-out", type=click.Path(path_type=Path), default=None, help="Also write the results here.")
@click.option("--baseline/--no-baseline", default=True, show_default=True,
              help="Also time the single-loop baseline (at 1 GB it takes a quarter of an hour; the 100 MB "
                   "run's baseline is the reference there).")
def main(raw_dir: Path, out: Path, workers: int, role: str | None, json_out: Path | None, baseline: bool) -> None:
    raw = sorted(raw_dir.glob("part-*.jsonl"))
    if role == "pipeline":
        click.echo(json.dumps(run_pipeline(raw, out, workers)))
        return
    if role == "baseline":
        click.echo(json.dumps(run_baseline(raw, out / "baseline")))
        return
    size_mb = sum(p.stat().st_size for p in raw) / 2**20
    results = {
        "input_mb": round(size_mb, 1),
        "cores": os.cpu_count(),
        "load_average_before": os.getloadavg(),
        "pipeline": child("pipeline", raw_dir, out, workers),
        **({"baseline": child("baseline", raw_dir, out, workers)} if baseline else {}),
        "planted_near_duplicates": near_duplicate_recall(raw_dir, out),
        "load_average_after": os.getloadavg(),
    }
    click.echo(json.dumps(results, indent=2))
    if json_out:
        json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
