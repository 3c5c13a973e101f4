"""Training artifacts: the model configuration inside ``model.pt`` and the rows of ``metrics.csv``.

The exporter validates ``model.pt["config"]`` with ``ModelConfig``; the UI and the plots read
``metrics.csv`` through ``MetricsRow`` (empty cells are ``None``: no validation that step, no GPU).
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class ModelConfig(BaseModel):
    """``model.pt["config"]``: enough to rebuild the GPT-2 graph (nanoGPT's GPTConfig fields)."""

    model_config = ConfigDict(extra="forbid")

    n_layer: int = Field(gt=0)
    n_head: int = Field(gt=0)
    n_embd: int = Field(gt=0)
    block_size: int = Field(gt=0, description="context length (learned positions)")
    vocab_size: int = Field(gt=0)
    dropout: float = Field(ge=0.0, lt=1.0)
    bias: bool = True

    @property
    def n_ff(self) -> int:
        """GPT-2's MLP width: four times the residual stream."""
        return 4 * self.n_embd

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        return self


METRICS_COLUMNS = (
    "step", "train_loss", "val_loss", "lr", "tokens_seen", "tokens_per_s", "mfu",
    "gpu_mem_allocated_gb", "gpu_mem_reserved_gb", "gpu_temp_c", "elapsed_s",
)


class MetricsRow(BaseModel):
    """One line of ``metrics.csv``, written every log interval (docs/training.md)."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=0)
    train_loss: float | None = None
    val_loss: float | None = Field(None, description="only on evaluation steps")
    lr: float
    tokens_seen: int = Field(ge=0)
    tokens_per_s: float | None = None
    mfu: float | None = Field(None, description="model FLOPs utilisation, 0..1; empty without a known peak")
    gpu_mem_allocated_gb: float | None = None
    gpu_mem_reserved_gb: float | None = None
    gpu_temp_c: float | None = None
    elapsed_s: float = Field(ge=0)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_cell_is_none(cls, value):
        return None if value == "" else value

    def csv_cells(self) -> list[str]:
        return ["" if (v := getattr(self, c)) is None else f"{v:.6g}" if isinstance(v, float) else str(v)
                for c in METRICS_COLUMNS]


def read_metrics(path: Path) -> list[MetricsRow]:
    """Rows of a (possibly live) metrics CSV; a last line still being written is ignored."""
    text = Path(path).read_text()
    complete = text[: text.rfind("\n") + 1]
    return [MetricsRow.model_validate(row) for row in csv.DictReader(complete.splitlines())]
