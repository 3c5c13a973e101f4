"""Trainer settings: section ``train`` (env ``ALS_TRAIN__*``), defaults = the seed's full run (§5.2-5.6).

Precedence: these defaults < ``.env`` / environment < ``--config FILE`` (YAML of this section)
< command-line options. Fields left at ``None`` are derived from the preset and the device, and
the effective values are logged at start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.settings import NOT_FINGERPRINTED, CommonSettings

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preset: Literal["tiny", "mini", "small", "base", "large"] = Field(
        "base", description="model size (model.PRESETS): tiny ~1M, small ~28M, base ~320M, large ~1.65B"
    )
    block_size: int | None = Field(None, gt=1, description="context length; None = the preset's")
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    gradient_checkpointing: bool | None = Field(
        None, description="None = on for large only (the plan's fastest for base on a 12 GB card has it off)"
    )

    max_steps: int = Field(50_000, gt=0, description="optimizer steps (each = micro_batch x grad_accum sequences)")
    micro_batch: int = Field(4, gt=0, description="sequences per forward pass per rank")
    grad_accum: int = Field(8, gt=0, description="micro-batches per optimizer step")
    lr: float = Field(6e-4, gt=0, description="peak learning rate")
    min_lr: float = Field(6e-5, ge=0, description="end of the cosine decay (10% of peak)")
    warmup_steps: int | None = Field(
        None, ge=0, description="linear warmup; None = min(2000, max_steps // 10)"
    )
    weight_decay: float = Field(0.1, ge=0, description="on matrices only, not biases or LayerNorm")
    beta1: float = Field(0.9, gt=0, lt=1)
    beta2: float = Field(0.95, gt=0, lt=1)
    grad_clip: float = Field(1.0, ge=0, description="max global gradient norm; 0 disables")

    log_interval: int = Field(100, gt=0, description="steps between CSV rows")
    eval_interval: int = Field(500, gt=0, description="steps between validation losses")
    eval_batches: int = Field(20, gt=0, description="micro-batches per validation loss")
    checkpoint_interval: int = Field(1000, gt=0, description="steps between checkpoints")
    keep_checkpoints: int = Field(3, gt=0, description="recent checkpoints kept besides the best",
                                  json_schema_extra=NOT_FINGERPRINTED)
    early_stopping_patience: int = Field(5, ge=0, description="evaluations without improvement; 0 = never")
    tokens_run: str | None = Field(
        None, description="the run whose token shards to train on: a tokenize run, or an extract-tokens run (the "
        "extraction arm, docs/extract.md); None: the latest tokenize run. Its content enters the fingerprint "
        "as the run's inputs", json_schema_extra=NOT_FINGERPRINTED)
    keep_at_fractions: list[float] = Field(
        [], description="also keep (and publish as checkpoints/<name>/model.pt) the checkpoints at these "
        "fractions of max_steps, e.g. [0.1, 0.25, 0.5, 1.0]: the experiment's learning curve"
    )
    probe_at_fractions: list[float] = Field(
        [], description="write the model's weights alone (published as snapshots/<name>/model.pt) at these "
        "fractions of max_steps: the probe's dense learning curve, without a full checkpoint each"
    )

    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = cuda when available")
    precision: Literal["auto", "bf16", "fp32"] = Field("auto", description="auto = bf16 on CUDA, fp32 on CPU")
    deepspeed_config: Path | None = Field(
        None, description="DeepSpeed JSON; None = configs/deepspeed/<zero0|zero2-offload>.json by preset (--plan)"
    )
    zero_stage: int | None = Field(None, ge=0, le=3, description="overrides the DeepSpeed file's ZeRO stage")
    offload: Literal["none", "optimizer", "optimizer+params"] | None = Field(
        None, description="overrides the DeepSpeed file's CPU offload"
    )
    peak_tflops: float | None = Field(
        None, gt=0, description="device peak for MFU; None = known GPUs' bf16 dense peak, empty on CPU"
    )
    checkpoint_dir: Path | None = Field(
        None, description="None = <work_dir>/train/<lineage>; resume picks its last complete checkpoint",
        json_schema_extra=NOT_FINGERPRINTED,
    )
    resume: bool = Field(True, description="continue from the last complete checkpoint when there is one")

    @model_validator(mode="after")
    def _lr_order(self) -> TrainConfig:
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr={self.min_lr} is above the peak lr={self.lr}")
        return self

    @field_validator("keep_at_fractions", "probe_at_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in fractions):
            raise ValueError(f"fractions must be in (0, 1]: {fractions}")
        return sorted(set(fractions))

    def steps_at(self, fractions: list[float]) -> list[int]:
        """The steps fractions of max_steps name (at least step 1 each), in order, without repeats."""
        return sorted({max(1, round(f * self.max_steps)) for f in fractions})

    @property
    def kept_steps(self) -> list[int]:
        return self.steps_at(self.keep_at_fractions)

    @property
    def probe_steps(self) -> list[int]:
        return self.steps_at(self.probe_at_fractions)

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing as asked, or the preset's default."""
        if self.gradient_checkpointing is not None:
            return self.gradient_checkpointing
        return self.preset in CHECKPOINTED_BY_DEFAULT

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps is not None else min(2000, self.max_steps // 10)


# What `als-lm train --plan` ranks fastest on the seed's 12 GB card (docs/training.md): base fits
# without any offload or checkpointing at the default 4 x 8; large needs the optimizer offloaded,
# but not its parameters, and at 4 x 8 needs checkpointing too (large-gpu.yaml's 2 x 16 does not).
# tests/trainer/test_plan.py keeps these, and the GPU configs, in step with the plan.
DEEPSPEED_BY_PRESET = {"tiny": "zero0", "mini": "zero0", "small": "zero0", "base": "zero0", "large": "zero2-offload"}
CHECKPOINTED_BY_DEFAULT = ("large",)


class TrainerSettings(CommonSettings):
    train: TrainConfig = TrainConfig()
