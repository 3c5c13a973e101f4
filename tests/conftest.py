"""Fixtures that start the real servers on 127.0.0.1 with temporary state, and stop them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared import servers
from shared.settings import StoreSettings
from shared.store import LocalStore, S3Store

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none on this machine")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory):
    with servers.minio(tmp_path_factory.mktemp("minio")) as server:
        yield server


def s3_settings(server: servers.MinioServer, bucket: str, **extra) -> StoreSettings:
    return StoreSettings(
        backend="s3",
        endpoint=server.endpoint,
        bucket=bucket,
        access_key=server.access_key,
        secret_key=server.secret_key,
        **extra,
    )


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """The same contract tests run against a directory and a real MinIO bucket."""
    if request.param == "local":
        return LocalStore(tmp_path / "artifacts")
    server = request.getfixturevalue("minio_server")
    return S3Store(s3_settings(server, f"t-{os.urandom(4).hex()}"))


@pytest.fixture
def local_store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "artifacts")


@pytest.fixture(scope="session")
def ollama_server(tmp_path_factory):
    with servers.ollama(tmp_path_factory.mktemp("ollama")).start(timeout=120) as server:
        yield server


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    with servers.chroma(tmp_path_factory.mktemp("chroma")).start(timeout=120) as server:
        yield server


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
