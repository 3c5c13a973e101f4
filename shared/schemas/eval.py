"""Evaluation artifacts (design §8-9): benchmark items, responses, scores and manual reviews."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BenchmarkCategory = Literal[
    "drug_treatment",
    "gene_mutation",
    "diagnostic_criteria",
    "clinical_trials",
    "disease_mechanisms",
    "temporal_accuracy",
]
BENCHMARK_CATEGORIES: tuple[str, ...] = BenchmarkCategory.__args__
SYSTEMS: tuple[str, ...] = ("scratch", "rag")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("is blank")
    return value


class BenchmarkItem(BaseModel):
    """One question of the hallucination benchmark (design §8.1)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    category: BenchmarkCategory
    question: str
    reference_answer: str
    key_facts: list[str] = Field(min_length=1, max_length=5)
    source: str

    _blank = field_validator("question", "reference_answer", "source")(_not_blank)

    @field_validator("key_facts")
    @classmethod
    def _facts_not_blank(cls, facts: list[str]) -> list[str]:
        for i, fact in enumerate(facts):
            if not fact.strip():
                raise ValueError(f"key fact {i} is blank")
        return facts


class RetrievedChunk(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunk_id: str
    source_id: str
    title: str = ""
    text: str
    distance: float


class Response(BaseModel):
    """One line of ``responses.jsonl``; the scorer's file mode needs only ``id`` and ``response``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    response: str
    latency_s: float | None = Field(None, ge=0)
    system: str | None = None
    model: str | None = None
    retrieved: list[RetrievedChunk] | None = None


FactMethod = Literal["exact", "tokens", "fuzzy", "embedding"]
Rejection = Literal["negation", "wrong_subject"]


class FactMatch(BaseModel):
    """How one key fact was judged, so every verdict can be inspected."""

    model_config = ConfigDict(extra="forbid")

    fact: str
    present: bool
    method: FactMethod | None = Field(None, description="how the fact was found (also when it was rejected)")
    rejected: Rejection | None = Field(None, description="found, but negated or stated of another subject")
    evidence: str | None = Field(None, description="the clause that stated (or rejected) the fact")
    score: float | None = None


class ItemScore(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    category: BenchmarkCategory
    facts_present: list[bool]
    accuracy: float = Field(ge=0.0, le=1.0)
    fabricated_entities: list[str]
    hedging: dict[str, Any]
    facts: list[FactMatch]


class ScoreFile(BaseModel):
    """``scores.json``: the stable scoring contract (issue 7) plus per-fact detail."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemScore]
    summary: dict[str, Any]


Correctness = Literal["correct", "partially_correct", "incorrect", "refusal"]
CORRECTNESS: tuple[str, ...] = Correctness.__args__
FailureMode = Literal[
    "confident_fabrication",
    "plausible_blending",
    "outdated_information",
    "boundary_confusion",
    "accurate_but_misleading",
]
FAILURE_MODES: tuple[str, ...] = FailureMode.__args__
Severity = Literal["low", "medium", "high"]
SEVERITIES: tuple[str, ...] = Severity.__args__


class Review(BaseModel):
    """One manual review with the failure taxonomy (design §8.3)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    system: str
    correctness: Correctness
    failure_mode: FailureMode | None = None
    severity: Severity | None = None
    notes: str = ""
    reviewer: str = ""
    reviewed_at: datetime

    @model_validator(mode="after")
    def _failure_only_when_wrong(self) -> Review:
        if self.correctness == "correct" and (self.failure_mode or self.severity):
            raise ValueError(f"review of {self.id}: a correct response has no failure mode or severity")
        if self.correctness in ("partially_correct", "incorrect") and not (self.failure_mode and self.severity):
            raise ValueError(f"review of {self.id}: a {self.correctness} response needs a failure mode and severity")
        return self
