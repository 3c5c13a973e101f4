"""The extraction arm's artifacts (docs/extract.md): question-answer text written from training sentences for
half of the probed facts (``extract-qa``), and what the main and the extraction model make of both halves
(``extract-measure``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.schemas.probe import ValueType

Half = Literal["qa_exposed", "qa_test"]
HALVES: tuple[str, ...] = Half.__args__


class QaPair(BaseModel):
    """One question and its answer, written from a training sentence that states a ``qa_exposed`` fact."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="the probe item it was written from (<benchmark id>.<fact>.mem)")
    benchmark_id: str
    fact_index: int = Field(ge=0)
    value_type: ValueType
    question: str = Field(min_length=1, description="the sentence with its value replaced by a wh-phrase")
    answer: str = Field(min_length=1, description="the value as the sentence writes it")
    source: str = Field(description="the training document the sentence is from")


class ExtractOutcome(BaseModel):
    """One benchmark item (QA) or probe item (probe) as one model at one checkpoint did on it
    (one line of ``results.jsonl``)."""

    model_config = ConfigDict(extra="forbid")

    model: Literal["main", "extract"]
    seed: int = Field(description="the model's training seed: QA is asked of the first seed's models only")
    checkpoint: str = Field(description="the kept checkpoint's name, or 'final' (model.pt)")
    measure: Literal["probe", "qa"]
    item: str = Field(description="a probe item id (probe) or a benchmark item id (qa)")
    half: Half
    correct: bool = Field(description="probe: the true value ranks first; qa: every counted key fact supported, "
                          "none contradicted (services/evaluator/score.py, is_correct)")
    graded: float = Field(ge=0.0, le=1.0, description="probe: reciprocal rank; qa: share of key facts supported")
    text: str = Field("", description="qa: the greedy answer; probe: the greedy continuation")
