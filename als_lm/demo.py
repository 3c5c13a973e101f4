"""``als-lm demo``: the whole pipeline on the bundled sample corpus, on CPU, without Docker.

Each stage runs as its own ``als-lm <stage>`` process, exactly as the containers run them, and
exchanges artifacts only through the store. Stages whose inputs and settings are unchanged are
skipped, so an interrupted demo resumes where it stopped. Servers the demo starts (Ollama, and
MinIO with ``--store minio``) are stopped on exit, also on Ctrl-C.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from als_lm.stack import LocalStack, Step, explore_hint, show_report
from shared import runs
from shared.log import console
from shared.store import ArtifactStore, open_store

TINY_CONFIG = Path(__file__).resolve().parents[1] / "services" / "trainer" / "configs" / "tiny-cpu.yaml"

# On two CPU cores the RAG generator reads ~2,500 prompt tokens per question, so the demo asks a
# stratified subset (5 per category) with short answers; the full 152 run in the stack or with
# `als-lm eval run`. CI's smoke run shrinks training and the benchmark further.
DEMO_ENV = {"ALS_EVAL__MAX_TOKENS": "96"}
SMOKE_ENV = {"ALS_EVAL__MAX_TOKENS": "32"}


def pipeline(smoke: bool) -> list[Step]:
    """The demo's stages in data order; ``smoke`` shrinks training and the benchmark for CI."""
    steps = ("--max-steps", "30", "--eval-interval", "15") if smoke else ()
    limit = ("--limit", "4" if smoke else "30")
    return [
        Step("ingest the bundled sample corpus", ("scrape", "sample")),
        Step("process: clean, dedup, filter, split", ("process",)),
        Step("tokenizer: train BPE, validate, write shards", ("tokenize",)),
        Step("train the tiny preset with DeepSpeed (CPU)", ("train", "--config", str(TINY_CONFIG), *steps)),
        Step("export: Hugging Face, GGUF, quantize", ("export", "run")),
        Step("serve: create als-lm in Ollama and verify", ("export", "ollama")),
        Step("RAG: chunk, embed, index in ChromaDB", ("rag", "index")),
        Step("benchmark the from-scratch model", ("eval", "run", "--system", "scratch", *limit)),
        Step("benchmark the from-scratch model as a base model (raw, k-shot)",
             ("eval", "run", "--system", "scratch_base", *limit)),
        Step("benchmark the RAG baseline", ("eval", "run", "--system", "rag", *limit)),
        Step("score the from-scratch answers", ("eval", "score", "--system", "scratch")),
        Step("score the from-scratch model's answers as a base model", ("eval", "score", "--system", "scratch_base")),
        Step("score the RAG answers", ("eval", "score", "--system", "rag")),
        Step("write the comparison report", ("report",)),
    ]


@click.command()
@click.option("--store", "store_kind", type=click.Choice(["local", "minio"]), default="local", show_default=True,
              help="local: a directory; minio: a real MinIO server started on 127.0.0.1 for the run.")
@click.option("--root", type=click.Path(path_type=Path), default=Path("volumes/demo"), show_default=True,
              help="Where the demo keeps its store, server data and scratch space.")
@click.option("--smoke", is_flag=True, help="Reduced settings (few training steps, 12 questions) for CI.")
@click.option("--force", is_flag=True, help="Rerun every stage even when unchanged.")
@click.option("--until", type=int, default=None, help="Stop after this many stages (1-14).")
def demo(store_kind: str, root: Path, smoke: bool, force: bool, until: int | None) -> None:
    """Raw sample → corpus → tokenizer → tiny model → GGUF in Ollama → RAG → scores → report."""
    steps = pipeline(smoke)[:until]
    started = time.monotonic()
    with LocalStack(root, store_kind, env=SMOKE_ENV if smoke else DEMO_ENV) as stack:
        for number, step in enumerate(steps, 1):
            stack.run(step, number, len(steps), force)
        console.rule("[bold green]ALS-LM demo finished")
        console.print(f"total time: {time.monotonic() - started:.0f}s")
        if until is None:
            show_headline(open_store(stack.store_settings), stack.root / "report")
            console.print(f"explore the results in the UI (no Docker): [bold]{explore_hint(root, store_kind)}[/bold]")


def show_headline(store: ArtifactStore, dest: Path) -> None:
    """Copy the report out of the store next to the demo and print its headline figures."""
    report = runs.resolve(store, show_report(store, dest))
    console.print(f"report: {dest / 'report.html'} (run {report.run} in {store.description})")
    for name, value in report.metrics.items():
        if isinstance(value, dict):  # per system: {"scratch": 0.0, "scratch_base": 0.0, "rag": 0.28}
            value = ", ".join(f"{system} {'n/a' if v is None else format(v, '.1%')}" for system, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.1%}"
        console.print(f"  {name}: {value}")
