"""UI settings: where the app listens, who may use it, how much load it accepts, what it answers with.

``ALS_UI__PORT=8080``, ``ALS_UI__AUTH_USER=alice ALS_UI__AUTH_PASSWORD=...``, ``ALS_UI__MAX_TOKENS=128``.
The UI composes the evaluator's settings (``eval`` for the scorer and the from-scratch model's tag,
``rag`` for the baseline) with its own ``ui`` section, so the pages answer with the same systems as
``als-lm eval run``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from services.evaluator.settings import EvaluatorSettings


class UIConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="interface to bind; loopback unless you mean to expose it")
    port: int = Field(7860, ge=1, le=65535)
    auth_user: str | None = Field(None, min_length=1, description="basic auth user; set with auth_password")
    auth_password: SecretStr | None = Field(None, description="basic auth password; no default")
    max_question_chars: int = Field(1000, ge=1, le=100_000, description="longer questions are refused")
    concurrency_limit: int = Field(
        20, ge=1, description="answers generated at once; the rest wait in the queue (Ollama serialises anyway)"
    )
    queue_size: int = Field(100, ge=1, description="requests waiting beyond that; more are refused as 'queue full'")
    temperature: float = Field(0.7, ge=0.0, le=5.0, description="default generation settings (seed §7.2)")
    top_k: int = Field(40, ge=0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1, le=4096)
    request_timeout_s: float = Field(120.0, gt=0, description="HTTP timeout of one Ollama request")
    metrics_csv: Path | None = Field(
        None, description="the trainer's live metrics.csv; None = the newest <work_dir>/train/*/metrics.csv"
    )
    training_refresh_s: float = Field(5.0, gt=0, description="how often the Training page rereads the CSV")

    @model_validator(mode="after")
    def _auth_pair(self) -> UIConfig:
        if (self.auth_user is None) != (self.auth_password is None):
            raise ValueError("auth_user and auth_password are set together or not at all")
        return self


class UISettings(EvaluatorSettings):
    ui: UIConfig = UIConfig()
