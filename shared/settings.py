"""One settings system for every stage: pydantic-settings, env prefix ``ALS_``, ``.env`` supported.

Each service composes its own ``Settings`` from ``CommonSettings`` by adding one section, so
``ALS_TRAIN__MAX_STEPS=100`` reaches the trainer and an unknown or mistyped value fails at start
with the field's name.
"""

from __future__ import annotations

import codecs
import io
import json
import os
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from dotenv.parser import parse_stream
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as PydanticSettingsError

from shared import userfiles
from shared.errors import InvalidInput

# A field's ``json_schema_extra`` says whether it enters the fingerprint of the stages that read
# its section (docs/architecture.md, "Skip-if-unchanged"). Unmarked fields enter it, so a new
# field can only cause an unneeded rerun, never a stale result.
NOT_FINGERPRINTED: dict[str, Any] = {"fingerprint": False}
"""How a stage runs (where, how fast, how loudly), never what it publishes: a change never reruns it."""


def affects(*stages: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field that changes the results of these stages only (``fnmatch``
    patterns over stage names, e.g. ``"score-*"``) though other stages read its section."""
    return {"fingerprint": list(stages)}


def fingerprinted(section: BaseModel, stage: str) -> dict[str, Any]:
    """The fields of ``section`` that change what ``stage`` publishes, as JSON data (nested sections
    recursively): every field except those marked ``NOT_FINGERPRINTED`` or ``affects`` other stages."""
    data = section.model_dump(mode="json")
    kept: dict[str, Any] = {}
    for name, field in type(section).model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        mark = extra.get("fingerprint", True)
        if mark is False or (isinstance(mark, list) and not any(fnmatchcase(stage, p) for p in mark)):
            continue
        if name not in data:  # exclude=True: never serialised, so never part of a result
            continue
        value = getattr(section, name)
        kept[name] = fingerprinted(value, stage) if isinstance(value, BaseModel) else data[name]
    return kept


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

    # The same pipeline on the local store and on MinIO gives the same fingerprints.
    store: StoreSettings = Field(StoreSettings(), json_schema_extra=NOT_FINGERPRINTED)
    work_dir: Path = Field(
        Path("volumes/work"), description="scratch space for stage runs", json_schema_extra=NOT_FINGERPRINTED
    )
    seed: int = Field(1337, description="seeds splits, sampling and training so reruns match")
    ollama_host: str = Field(
        "http://127.0.0.1:11434", description="the Ollama server that serves als-lm and the RAG generator",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="--quiet shows warnings only", json_schema_extra=NOT_FINGERPRINTED
    )


class SettingsError(InvalidInput):
    """Settings that cannot be used; the message names the field."""


def check_env_file(path: Path = Path(".env")) -> None:
    """Refuse a ``.env`` that python-dotenv could not decode (it reads UTF-8 only) or would partly skip
    with a warning: a setting silently lost is worse than a clear stop."""
    if not path.is_file():
        return
    data = userfiles.read_bytes(path, "settings file", userfiles.CONFIG_LIMIT)
    if data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SettingsError(f"settings file {path} starts with a byte-order mark; save it as UTF-8 without one")
    text = userfiles.decode(data, path, "settings file")
    bad = next((b.original.line for b in parse_stream(io.StringIO(text)) if b.error), None)
    if bad is not None:
        raise SettingsError(f"settings file {path} line {bad} is not KEY=value or a comment; fix or remove it")


def load(cls: type[CommonSettings], **overrides: Any) -> CommonSettings:
    """Build settings from env/.env, then ``overrides`` (the command line); unknown keys are refused."""
    known = set(cls.model_fields)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        return cls(**overrides)
    except PydanticSettingsError as err:  # a value that is not the JSON its field needs
        raise SettingsError(f"invalid settings for {cls.__name__}: {userfiles.one_line(err)}") from None
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in err.errors()
        )
        raise SettingsError(f"invalid settings for {cls.__name__}: {problems}") from None


def masked(settings: BaseModel) -> dict[str, Any]:
    """Settings as JSON-ready data with secrets shown as ``**********``."""
    return json.loads(settings.model_dump_json())
