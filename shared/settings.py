"""One settings system for every stage: pydantic-settings, env prefix ``ALS_``, ``.env`` supported.

Each service composes its own ``Settings`` from ``CommonSettings`` by adding one section, so
``ALS_TRAIN__MAX_STEPS=100`` reaches the trainer and an unknown or mistyped value fails at start
with the field's name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


def cache_dir() -> Path:
    """Where binaries and downloads that outlive a clone live (MinIO, Ollama builds)."""
    return Path(os.environ.get("ALS_CACHE_DIR", Path.home() / ".cache" / "als-lm"))


class StoreSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["local", "s3"] = Field("local", description="local: a directory; s3: a MinIO bucket")
    root: Path = Field(Path("volumes/artifacts"), description="local backend: the artifact directory")
    endpoint: str = Field("127.0.0.1:9000", description="s3 backend: host:port of the MinIO server")
    bucket: str = Field("als-lm", description="s3 backend: the bucket every stage shares")
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    secure: bool = Field(False, description="s3 backend: use https")
    create_bucket: bool = Field(True, description="s3 backend: create the bucket when it is missing")


class CommonSettings(BaseSettings):
    """Settings every stage shares; services subclass this and add their own section."""

    model_config = SettingsConfigDict(
        env_prefix="ALS_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        validate_default=True,
    )

    store: StoreSettings = StoreSettings()
    work_dir: Path = Field(Path("volumes/work"), description="scratch space for stage runs")
    seed: int = Field(1337, description="seeds splits, sampling and training so reruns match")
    ollama_host: str = Field(
        "http://127.0.0.1:11434", description="the Ollama server that serves als-lm and the RAG generator"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="--quiet shows warnings only")


class SettingsError(ValueError):
    """Settings that cannot be used; the message names the field."""


def load(cls: type[CommonSettings], **overrides: Any) -> CommonSettings:
    """Build settings from env/.env, then ``overrides`` (the command line); unknown keys are refused."""
    known = set(cls.model_fields)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return cls(**overrides)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
        )
        raise SettingsError(f"invalid settings for {cls.__name__}: {problems}") from None


def masked(settings: BaseModel) -> dict[str, Any]:
    """Settings as JSON-ready data with secrets shown as ``**********``."""
    return json.loads(settings.model_dump_json())
