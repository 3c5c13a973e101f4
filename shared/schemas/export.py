"""Export and serving artifacts (docs/export.md): ``export/<run>/report.json`` and ``serve/<run>/report.json``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GGUFVariant(BaseModel):
    """One GGUF file of an export run and how it measured on the validation split."""

    model_config = ConfigDict(extra="forbid")

    name: Literal["f32", "f16", "Q8_0", "Q5_K_M", "Q4_K_M"]
    file: str = Field(description="output name inside the export run, e.g. gguf/als-lm-Q5_K_M.gguf")
    size_bytes: int
    perplexity: float = Field(description="validation perplexity computed by llama.cpp")
    tensor_types: dict[str, int] = Field(description="ggml tensor type -> count, read back from the file")
    fallback: dict[str, str] = Field(
        {}, description="K-quant tensors whose row length is not a multiple of 256 -> the type used instead"
    )


class ExportReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    train_run: str
    gpt_config: dict = Field(description="the checkpoint's GPT config")
    n_params: int
    default_quant: str
    variants: list[GGUFVariant]
    hf_vs_gguf_max_abs_logit_diff: dict[str, float] = Field(description="f32/f16 GGUF vs HF on validation text")
    tokenizer_parity_docs: int = Field(description="validation documents tokenized identically by HF and llama.cpp")
    ppl_tokens: int


class PromptCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str
    response: str
    ttft_s: float = Field(description="request sent -> first streamed token, model already loaded")
    tokens: int
    tokens_per_s: float = Field(description="server-measured generation rate (eval_count / eval_duration)")


class TagCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tag: str
    quant: str
    load_s: float
    prompts: list[PromptCheck]
    runner_rss_bytes: int | None = Field(description="resident memory of the runner process; None if remote")
    server_reported_bytes: int = Field(description="model memory as reported by /api/ps")


class ServeReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    export_run: str
    host: str
    server_version: str
    backend: Literal["ollama"]
    tags: list[TagCheck]
