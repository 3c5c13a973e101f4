"""The experiment's result (issue 13): what `als-lm experiment` publishes as ``experiment.json``
and what the report reads to draw learning curves, the closed-book row and the exposure analysis.

Every field that names a run is ``<stage>/<run_id>`` of a published run in the same store, so the
report regenerates everything from stored artifacts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ExposureBucket = Literal["unseen", "validation_only", "1", "2-4", "5+"]
EXPOSURE_BUCKETS: tuple[str, ...] = ExposureBucket.__args__


class CheckpointResult(BaseModel):
    """One kept checkpoint of the from-scratch model, exported, served, asked and scored."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="the checkpoint's name in the train run, e.g. step-000300")
    step: int = Field(ge=0)
    tokens_seen: int = Field(ge=0)
    train_loss: float | None = None
    val_loss: float | None = None
    export_run: str
    serve_run: str
    eval_run: str = Field(description="eval-scratch/<run_id>: its responses")
    score_run: str = Field(description="score-scratch/<run_id>: its scores")
    base_eval_run: str | None = Field(None, description="eval-scratch_base/<run_id>: the same model asked raw, "
                                      "k-shot, as a base model (issue 23)")
    base_score_run: str | None = Field(None, description="score-scratch_base/<run_id>: their scores")


class FactExposure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fact: str
    train_docs: int = Field(ge=0, description="training-split documents that contain the fact")
    validation_docs: int = Field(ge=0, description="validation-split documents that contain the fact")
    bucket: ExposureBucket


class ItemExposure(BaseModel):
    """How often the training split showed a question's key facts (Kandpal et al., ICML 2023)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    facts: list[FactExposure]
    bucket: ExposureBucket = Field(description="the item's bucket: that of its median fact")


class ExperimentResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    preset: str
    parameters: int = Field(gt=0)
    train_run: str
    unigram_val_loss: float | None = Field(None, description="the baseline a model that learned nothing reaches")
    checkpoints: list[CheckpointResult] = Field(min_length=1, description="ordered by step; the last is final")
    systems: dict[str, str] = Field(
        description="system -> score run of the comparison on all questions: scratch and scratch_base (final "
        "checkpoint), rag, closed_book"
    )
    probe_run: str | None = Field(None, description="the probe-scratch run: every seed's points of training "
                                  "scored on the likelihood probe (docs/probe.md)")
    seed_train_runs: list[str] = Field([], description="the train runs of the other seeds (probed only)")
    exposure: list[ItemExposure]

    @model_validator(mode="after")
    def _ordered(self) -> ExperimentResult:
        steps = [c.step for c in self.checkpoints]
        if steps != sorted(set(steps)):
            raise ValueError(f"checkpoints must be in increasing step order without repeats: {steps}")
        return self
