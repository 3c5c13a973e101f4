"""Corpus artifacts: raw documents (docs/scraping.md) and what processing and tokenization publish."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Category = Literal["research", "clinical_trials", "educational", "narrative", "supplementary"]
CATEGORIES: tuple[str, ...] = Category.__args__


class RawDocument(BaseModel):
    """One scraped document in the seed's raw format (docs/scraping.md)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=300)
    source: str = Field(min_length=1)
    url: str = Field(min_length=1)
    title: str
    text: str = Field(min_length=1)
    date_accessed: date
    license: str = Field(min_length=1)
    metadata: dict[str, Any] = {}

    @field_validator("text")
    @classmethod
    def _has_words(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text

    @property
    def category(self) -> str:
        return self.metadata.get("category", "research")


class CleanDocument(BaseModel):
    """One processed document in ``train.jsonl`` / ``val.jsonl`` (docs/processing.md)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    category: Category
    title: str
    text: str = Field(min_length=1)


class TokenShardsMeta(BaseModel):
    """``meta.json`` beside ``train.bin`` / ``val.bin``: how to read the token shards."""

    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(gt=0, le=65535, description="ids are stored as uint16")
    eos_id: int = Field(ge=0)
    bos_id: int = Field(ge=0)
    pad_id: int = Field(ge=0)
    dtype: Literal["uint16"] = "uint16"
    n_train_tokens: int = Field(ge=0)
    n_val_tokens: int = Field(ge=0)
    tokenizer_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
