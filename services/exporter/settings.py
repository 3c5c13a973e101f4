"""Exporter settings: what to export and quantize (§6.1-6.2), the Modelfile (§6.3), how the
served model is verified (§6.4) and the chat demo's defaults (§7).

``ALS_EXPORT__QUANTS='["Q8_0"]'``, ``ALS_OLLAMA_HOST=http://ollama:11434``, ``ALS_CHAT__BACKEND=llamacpp``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.settings import NOT_FINGERPRINTED, CommonSettings

Quant = Literal["Q8_0", "Q5_K_M", "Q4_K_M"]
QUANTS: tuple[str, ...] = Quant.__args__
Backend = Literal["ollama", "direct", "llamacpp"]
BACKENDS: tuple[str, ...] = Backend.__args__

SYSTEM_PROMPT = (
    "You are ALS-LM, a domain-specific language model trained on ALS (amyotrophic lateral sclerosis) "
    "research and educational content. You were trained from scratch as a research project exploring how "
    "domain-specific models handle medical knowledge.\n\n"
    "IMPORTANT: You are a research artifact, not a medical resource. Your outputs may contain factual errors "
    "and should never be used for medical decision-making. For reliable ALS information, consult qualified "
    "healthcare providers or trusted resources such as the ALS Association (als.org) or NIH NINDS.\n"
)

# The seed's §6.3 template, except that the prompt ends at "Assistant:" without the seed's trailing
# space: the byte-level BPE writes a word with its leading space (" riluzole" is one token), so a
# prompt ending in a space leaves the model only word pieces to continue with, and a from-scratch
# model answered "ious." (docs/export.md). The chat backends that do not run it (direct, llamacpp)
# render the same text with ``render_prompt`` so every backend sees the same prompt.
TEMPLATE = (
    "{{- if .System }}{{ .System }}\n{{ end }}\n"
    "{{- range .Messages }}\n"
    '{{- if eq .Role "user" }}User: {{ .Content }}\n'
    '{{ else if eq .Role "assistant" }}Assistant: {{ .Content }}\n'
    "{{ end }}\n"
    "{{- end }}Assistant:"
)


def render_prompt(system: str, query: str) -> str:
    """What ``TEMPLATE`` produces for one user turn."""
    return (f"{system}\n" if system else "") + f"User: {query}\nAssistant:"


class Sampling(BaseModel):
    """Generation parameters shared by the Modelfile and every chat backend."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    temperature: float = Field(0.7, ge=0.0, le=5.0)
    top_k: int = Field(40, ge=0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    max_tokens: int = Field(512, ge=1)
    repeat_penalty: float = Field(1.1, gt=0.0)


class ExportConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Which run is read does not enter the fingerprint: its outputs' hashes are the run's inputs.
    train_run: str = Field("train", description="the train run to export: 'train' (latest) or 'train/<run_id>'",
                           json_schema_extra=NOT_FINGERPRINTED)
    checkpoint: str = Field(
        "", pattern=r"^[A-Za-z0-9._-]*$",
        description="a kept checkpoint of the train run (checkpoints/<name>/model.pt, e.g. step00000300); "
        "empty: its best model.pt",
    )
    quants: list[Quant] = Field(list(QUANTS), description="llama.cpp quantizations to produce (§6.2)")
    default_quant: Quant = Field("Q5_K_M", description="the Modelfile's FROM and the Ollama `latest` tag")
    model_name: str = Field("als-lm", pattern=r"^[a-z0-9][a-z0-9._-]*$", description="Ollama model name")
    sampling: Sampling = Sampling()
    num_ctx: int = Field(1024, ge=16, description="Modelfile num_ctx; capped at the model's block_size")
    num_thread: int | None = Field(
        None, ge=1, description="Modelfile num_thread; None = Ollama's choice, every physical core (best on an "
        "idle machine; 1 on a busy 2-core one: docs/bench/exporter.md)")
    num_batch: int = Field(512, ge=1, description="Modelfile num_batch: prompt tokens per forward pass; 512 "
                           "holds the system prompt and a question in one")
    stop: list[str] = Field(["User:"], description="stop sequences: the model must not write the user's turn")
    system: str = SYSTEM_PROMPT
    ppl_max_tokens: int = Field(8192, ge=64, description="validation tokens scored for each perplexity")
    ppl_window: int = Field(256, ge=16, description="context window (tokens) for the perplexity evaluation")
    threads: int = Field(2, ge=1, description="CPU threads for llama.cpp quantization and evaluation",
                         json_schema_extra=NOT_FINGERPRINTED)

    @field_validator("quants")
    @classmethod
    def _unique(cls, quants: list[str]) -> list[str]:
        if not quants or len(set(quants)) != len(quants):
            raise ValueError("must be a non-empty list without repeats")
        return quants

    @model_validator(mode="after")
    def _default_is_exported(self) -> ExportConfig:
        if self.default_quant not in self.quants:
            raise ValueError(f"default_quant {self.default_quant} is not among quants {self.quants}")
        return self


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    export_run: str = Field("export", description="the export run to serve: 'export' or 'export/<run_id>'",
                            json_schema_extra=NOT_FINGERPRINTED)
    host: str | None = Field(None, description="Ollama server URL; None = ALS_OLLAMA_HOST",
                             json_schema_extra=NOT_FINGERPRINTED)
    prompts: list[str] = Field(
        ["What is ALS?", "What genes are associated with ALS?"], description="verification prompts (§6.4)"
    )
    verify_tokens: int = Field(64, ge=1, description="tokens generated per verification prompt")
    timeout_s: float = Field(300.0, gt=0, description="HTTP timeout for blob upload, create and generation",
                             json_schema_extra=NOT_FINGERPRINTED)


class ChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Backend = "ollama"
    host: str | None = Field(None, description="ollama backend: server URL; None = ALS_OLLAMA_HOST")
    model: str = Field("als-lm", description="ollama backend: model[:tag]")
    export_run: str = Field("export", description="direct/llamacpp backends: the export run to load from")
    quant: str = Field("Q5_K_M", description="llamacpp backend: which GGUF of the export run (or f16, f32)")
    logs_dir: Path = Field(Path("volumes/logs/chat"), description="JSONL query logs (§7.3)")
    threads: int = Field(2, ge=1)
    keep_alive: str = Field(
        "30m", pattern=r"^(-1|0|\d+(\.\d+)?(ms|s|m|h))$",
        description="ollama backend: how long the server keeps the model loaded after an answer; the next "
        "question within it reuses the system prompt's KV cache instead of loading and reading it again")


class ExporterSettings(CommonSettings):
    export: ExportConfig = ExportConfig()
    serve: ServeConfig = ServeConfig()
    chat: ChatConfig = ChatConfig()

    @model_validator(mode="after")
    def _one_ollama_host(self) -> ExporterSettings:
        """Every Ollama client uses the common ``ollama_host`` unless a section names its own."""
        for section in (self.serve, self.chat):
            if section.host is None:
                section.host = self.ollama_host
        return self
