"""``als-lm demo``: the whole pipeline on the bundled sample corpus, on CPU, without Docker.

Each stage runs as its own ``als-lm <stage>`` process, exactly as the containers run them, and
exchanges artifacts only through the store. Stages whose inputs and settings are unchanged are
skipped, so an interrupted demo resumes where it stopped. Servers the demo starts (Ollama, and
MinIO with ``--store minio``) are stopped on exit, also on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import click

from shared import runs, servers
from shared.log import console
from shared.settings import StoreSettings
from shared.store import ArtifactStore, open_store


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]


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
        Step("benchmark the RAG baseline", ("eval", "run", "--system", "rag", *limit)),
        Step("score the from-scratch answers", ("eval", "score", "--system", "scratch")),
        Step("score the RAG answers", ("eval", "score", "--system", "rag")),
        Step("write the comparison report", ("report",)),
    ]


def _minio_credentials(path: Path) -> tuple[str, str]:
    """Generated once per demo folder, so a rerun finds its bucket; never a default secret."""
    if path.exists():
        data = json.loads(path.read_text())
        return data["access_key"], data["secret_key"]
    path.parent.mkdir(parents=True, exist_ok=True)
    access, secret = "demo" + secrets.token_hex(4), secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"access_key": access, "secret_key": secret}, fh)
    return access, secret


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


@click.command()
@click.option("--store", "store_kind", type=click.Choice(["local", "minio"]), default="local", show_default=True,
              help="local: a directory; minio: a real MinIO server started on 127.0.0.1 for the run.")
@click.option("--root", type=click.Path(path_type=Path), default=Path("volumes/demo"), show_default=True,
              help="Where the demo keeps its store, server data and scratch space.")
@click.option("--smoke", is_flag=True, help="Reduced settings (few training steps, 12 questions) for CI.")
@click.option("--force", is_flag=True, help="Rerun every stage even when unchanged.")
@click.option("--until", type=int, default=None, help="Stop after this many stages (1-12).")
def demo(store_kind: str, root: Path, smoke: bool, force: bool, until: int | None) -> None:
    """Raw sample → corpus → tokenizer → tiny model → GGUF in Ollama → RAG → scores → report."""
    root = root.resolve()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    env = {
        **os.environ,
        "ALS_WORK_DIR": str(root / "work"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
        "DS_ACCELERATOR": "cpu",
        "ALS_TRAIN__DEVICE": "cpu",
        **(SMOKE_ENV if smoke else DEMO_ENV),
    }
    steps = pipeline(smoke)[:until]
    started = time.monotonic()
    with ExitStack() as stack:
        if store_kind == "minio":
            access, secret = _minio_credentials(root / "minio" / "credentials.json")
            minio = stack.enter_context(servers.minio(root / "minio", access_key=access, secret_key=secret))
            store_settings = StoreSettings(backend="s3", endpoint=minio.endpoint, bucket="als-lm-demo",
                                           access_key=access, secret_key=secret)
        else:
            store_settings = StoreSettings(backend="local", root=root / "artifacts")
        env.update(_store_env(store_settings))
        console.print("[bold]starting Ollama on 127.0.0.1[/bold]")
        ollama = stack.enter_context(servers.ollama(root / "ollama").start(timeout=120))
        env["ALS_OLLAMA_HOST"] = ollama.base_url

        for number, step in enumerate(steps, 1):
            argv = [sys.executable, "-m", "als_lm", *step.argv, *(["--force"] if force else [])]
            console.rule(f"[bold]{number}/{len(steps)} {step.title}")
            t0 = time.monotonic()
            proc = subprocess.run(argv, env=env, check=False)
            if proc.returncode != 0:
                raise click.ClickException(
                    f"stage {number} ({' '.join(step.argv)}) failed with exit code {proc.returncode}; "
                    "fix the error above and rerun `make demo`: finished stages are skipped"
                )
            console.print(f"[green]done[/green] in {time.monotonic() - t0:.1f}s")

        console.rule("[bold green]ALS-LM demo finished")
        console.print(f"total time: {time.monotonic() - started:.0f}s")
        if until is None:
            _show_report(open_store(store_settings), root / "report")


def _store_env(settings: StoreSettings) -> dict[str, str]:
    """The store settings as the ``ALS_STORE__*`` variables every stage process reads."""
    env = {"ALS_STORE__BACKEND": settings.backend, "ALS_STORE__ROOT": str(settings.root),
           "ALS_STORE__ENDPOINT": settings.endpoint, "ALS_STORE__BUCKET": settings.bucket}
    for name in ("access_key", "secret_key"):
        if (secret := getattr(settings, name)) is not None:
            env[f"ALS_STORE__{name.upper()}"] = secret.get_secret_value()
    return env


def _show_report(store: ArtifactStore, dest: Path) -> None:
    """Copy the report out of the store next to the demo and print its headline figures."""
    report = runs.latest(store, "report")
    for name in ("report.md", "report.html"):
        runs.fetch(store, report.output(name), dest / name)
    console.print(f"report: {dest / 'report.html'} (run {report.run} in {store.description})")
    for name, value in report.metrics.items():
        if isinstance(value, dict):  # per system: {"scratch": 0.0, "rag": 0.28}
            value = ", ".join(f"{system} {v:.1%}" for system, v in value.items())
        elif isinstance(value, float):
            value = f"{value:.1%}"
        console.print(f"  {name}: {value}")
