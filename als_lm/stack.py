"""The local stack that ``als-lm demo``, ``als-lm experiment`` and ``als-lm explore`` run in, without Docker.

One folder holds everything a run keeps: the store (``artifacts/``, or a MinIO server's data in
``minio/``), Ollama's models (``ollama/``) and the stages' scratch space (``work/``). Stages run as
their own ``als-lm <stage>`` processes, exactly as the containers run them, with the store and
server addresses in ``ALS_*`` variables. Servers started here stop on exit, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import click

from shared import runs, servers
from shared.log import console
from shared.settings import StoreSettings
from shared.store import ArtifactStore

# Offline: nothing is fetched from a model hub while a stage runs.
BASE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
}
CPU_ENV = {"DS_ACCELERATOR": "cpu", "ALS_TRAIN__DEVICE": "cpu"}


@dataclass(frozen=True)
class Step:
    title: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    resumable: bool = True  # a stopped run picks up from its journal; False: stopping it loses its work


def minio_credentials(path: Path) -> tuple[str, str]:
    """Generated once per folder, so a rerun finds its bucket; never a default secret."""
    if path.exists():
        data = json.loads(path.read_text())
        return data["access_key"], data["secret_key"]
    path.parent.mkdir(parents=True, exist_ok=True)
    access, secret = "demo" + secrets.token_hex(4), secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"access_key": access, "secret_key": secret}, fh)
    return access, secret


def store_env(settings: StoreSettings) -> dict[str, str]:
    """The store settings as the ``ALS_STORE__*`` variables every stage process reads."""
    env = {"ALS_STORE__BACKEND": settings.backend, "ALS_STORE__ROOT": str(settings.root),
           "ALS_STORE__ENDPOINT": settings.endpoint, "ALS_STORE__BUCKET": settings.bucket}
    for name in ("access_key", "secret_key"):
        if (secret := getattr(settings, name)) is not None:
            env[f"ALS_STORE__{name.upper()}"] = secret.get_secret_value()
    return env


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


class LocalStack:
    """Servers and environment for stage processes under ``root``; use as a context manager."""

    def __init__(self, root: Path, store_kind: str = "local", bucket: str = "als-lm-demo",
                 env: dict[str, str] | None = None, cpu: bool = True):
        self.root = Path(root).resolve()
        self.store_kind, self.bucket = store_kind, bucket
        self.env = {**os.environ, "ALS_WORK_DIR": str(self.root / "work"), **BASE_ENV,
                    **(CPU_ENV if cpu else {}), **(env or {})}
        self.store_settings: StoreSettings | None = None
        self._stack = ExitStack()

    def __enter__(self) -> Self:
        signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            if self.store_kind == "minio":
                access, secret = minio_credentials(self.root / "minio" / "credentials.json")
                minio = self._stack.enter_context(servers.minio(self.root / "minio", access_key=access,
                                                                secret_key=secret))
                self.store_settings = StoreSettings(backend="s3", endpoint=minio.endpoint, bucket=self.bucket,
                                                    access_key=access, secret_key=secret)
            else:
                self.store_settings = StoreSettings(backend="local", root=self.root / "artifacts")
            self.env.update(store_env(self.store_settings))
            console.print("[bold]starting Ollama on 127.0.0.1[/bold]")
            ollama = self._stack.enter_context(servers.ollama(self.root / "ollama").start(timeout=120))
            self.env["ALS_OLLAMA_HOST"] = self.ollama_host = ollama.base_url
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def background(self, steps: list[Step], log: Path) -> Background:
        """Start ``steps`` in the background; they are stopped before the servers when the stack closes."""
        started = Background(self, steps, log).start()
        self._stack.callback(started.stop)
        return started

    def run(self, step: Step, number: int, total: int, force: bool = False, rerun: str = "make demo") -> float:
        """Run one stage process; a failure stops with its exit code and says how to resume."""
        argv = [sys.executable, "-m", "als_lm", *step.argv, *(["--force"] if force else [])]
        console.rule(f"[bold]{number}/{total} {step.title}")
        t0 = time.monotonic()
        proc = subprocess.run(argv, env={**self.env, **step.env}, check=False)
        if proc.returncode != 0:
            raise click.ClickException(
                f"stage {number} ({' '.join(step.argv)}) failed with exit code {proc.returncode}; "
                f"fix the error above and rerun `{rerun}`: finished stages are skipped"
            )
        seconds = time.monotonic() - t0
        console.print(f"[green]done[/green] in {seconds:.1f}s")
        return seconds


class Background:
    """Stage processes run one after another beside the foreground stages, their output in a log.

    The experiment builds the RAG index and asks the baselines in one such lane while the model trains,
    and trains further seeds in another beside the checkpoints: with one thread each, the lanes and the
    foreground keep both cores busy instead of waiting in turn. A failed step is reported, not raised:
    the foreground runs it again (answers resume from those journaled so far; a run the background
    published is skipped)."""

    def __init__(self, stack: LocalStack, steps: list[Step], log: Path):
        self.stack, self.steps, self.log = stack, steps, log
        self.results: list[tuple[Step, int, float]] = []
        self._proc: subprocess.Popen | None = None
        self._current: Step | None = None
        self._stopped = threading.Event()
        self._finish_unresumable = False
        self._starting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=log.stem, daemon=True)

    def _run(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            for step in self.steps:
                with self._starting:  # stop() never misses a step started as it is called
                    if self._stopped.is_set() and (step.resumable or not self._finish_unresumable):
                        return
                    t0 = time.monotonic()
                    self._current = step
                    self._proc = subprocess.Popen([sys.executable, "-m", "als_lm", *step.argv],
                                                  env={**self.stack.env, **step.env}, stdout=out,
                                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                code = self._proc.wait()
                self.results.append((step, code, round(time.monotonic() - t0, 1)))

    def start(self) -> Self:
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """A step is still running or about to start."""
        return self._thread.is_alive()

    def join(self) -> list[tuple[Step, int, float]]:
        """Wait for every step; (step, exit code, seconds) of each that ran."""
        self._thread.join()
        return self.results

    def stop(self, finish_unresumable: bool = False) -> None:
        """End the running step (its answers so far stay journaled; its exit code is negative) and start
        no other: on exit or Ctrl-C, and when the foreground takes the rest over with more threads. With
        ``finish_unresumable`` the steps that cannot resume, running or next in line, are waited for instead
        (the RAG index and the RAG probe), and none after them is started."""
        with self._starting:
            self._finish_unresumable = finish_unresumable
            self._stopped.set()
            current = self._current
        if finish_unresumable and (current is None or not current.resumable):
            self._thread.join()
            return
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._thread.join(timeout=60)


def explore_hint(root: Path, store_kind: str = "local") -> str:
    """The one command that opens the UI over a demo's or an experiment's results."""
    try:
        shown = Path(root).resolve().relative_to(Path.cwd())
    except ValueError:
        shown = Path(root).resolve()
    return f"als-lm explore --root {shown}" + (" --store minio" if store_kind == "minio" else "")


def show_report(store: ArtifactStore, dest: Path) -> str:
    """Copy the latest report (Markdown and HTML) out of the store into ``dest``; returns its run."""
    report = runs.latest(store, "report")
    for name in ("report.md", "report.html"):
        runs.fetch(store, report.output(name), Path(dest) / name)
    return report.run
