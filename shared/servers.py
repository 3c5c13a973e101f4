"""Start the real servers (MinIO, Ollama, Chroma) on 127.0.0.1 for tests, the demo and doctor.

The MinIO and Ollama binaries are built from their Go modules by ``scripts/setup.sh`` into
``~/.cache/als-lm/bin``; Chroma comes from the ``chromadb`` package.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from shared.errors import AlsError
from shared.settings import cache_dir


class ServerError(AlsError, RuntimeError):
    """A server could not be started or reached; the message says which and how to fix it."""


def binary(name: str) -> Path:
    """A server binary built by the setup step; a clear error says how to get it."""
    path = Path(os.environ.get(f"ALS_{name.upper()}_BIN", cache_dir() / "bin" / name))
    if not path.is_file() or not os.access(path, os.X_OK):
        found = shutil.which(name)
        if found:
            return Path(found)
        raise ServerError(f"{name} binary not found at {path}; run `make setup` (builds it from its Go module)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalServer:
    """A server process on 127.0.0.1 that is stopped (and its children with it) on exit."""

    name: str
    argv: list[str]
    base_url: str
    health_path: str
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> LocalServer:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        health_url = self.base_url + self.health_path
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode} at start; last log lines:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(health_url, timeout=2) as resp:
                    if resp.status < 500:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        self.stop()
        raise ServerError(f"{self.name} did not become healthy at {health_url} in {timeout:.0f}s:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def __enter__(self) -> Self:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class MinioServer(LocalServer):
    endpoint: str = ""
    access_key: str = ""
    secret_key: str = ""


def minio(data_dir: Path, port: int | None = None, access_key: str | None = None,
          secret_key: str | None = None) -> MinioServer:
    port = port or free_port()
    access_key = access_key or "als" + secrets.token_hex(4)
    secret_key = secret_key or secrets.token_urlsafe(24)
    data_dir = Path(data_dir)
    return MinioServer(
        name="minio",
        argv=[str(binary("minio")), "server", str(data_dir / "data"), "--quiet",
              "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{free_port()}"],
        base_url=f"http://127.0.0.1:{port}",
        health_path="/minio/health/live",
        log_path=data_dir / "minio.log",
        env={"MINIO_ROOT_USER": access_key, "MINIO_ROOT_PASSWORD": secret_key, "MINIO_BROWSER": "off"},
        endpoint=f"127.0.0.1:{port}",
        access_key=access_key,
        secret_key=secret_key,
    )


def ollama(models_dir: Path, port: int | None = None) -> LocalServer:
    port = port or free_port()
    models_dir = Path(models_dir)
    return LocalServer(
        name="ollama",
        argv=[str(binary("ollama")), "serve"],
        base_url=f"http://127.0.0.1:{port}",
        health_path="/api/version",
        log_path=models_dir / "ollama.log",
        env={
            "OLLAMA_HOST": f"127.0.0.1:{port}",
            "OLLAMA_MODELS": str(models_dir / "models"),
            "OLLAMA_NOPRUNE": "1",
            "OLLAMA_KEEP_ALIVE": "5m",
        },
    )


def chroma(path: Path, port: int | None = None) -> LocalServer:
    port = port or free_port()
    path = Path(path)
    chroma_cli = Path(sys.executable).with_name("chroma")
    return LocalServer(
        name="chroma",
        argv=[str(chroma_cli), "run", "--path", str(path / "data"), "--host", "127.0.0.1", "--port", str(port)],
        base_url=f"http://127.0.0.1:{port}",
        health_path="/api/v2/heartbeat",
        log_path=path / "chroma.log",
        env={"ANONYMIZED_TELEMETRY": "False"},
    )

