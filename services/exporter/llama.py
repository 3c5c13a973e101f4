"""Loading a GGUF with llama.cpp (llama-cpp-python) and scoring it: perplexity and raw logits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from llama_cpp import GGML_TYPE_F32, Llama

from shared.errors import InvalidInput

GGUF_MAGIC = b"GGUF"


class GGUFError(InvalidInput):
    """A GGUF file llama.cpp cannot use; the message names the file."""


def load(path: Path, n_ctx: int, threads: int, logits_all: bool = False, f32_cache: bool = False) -> Llama:
    """``n_ctx=0`` takes the model's context. ``f32_cache`` keeps keys and values in f32 instead of
    llama.cpp's default f16, so a comparison measures the file's weights, not the cache."""
    path = Path(path)
    if not path.is_file():
        raise GGUFError(f"GGUF file {path} does not exist")
    with open(path, "rb") as f:
        if f.read(4) != GGUF_MAGIC:
            raise GGUFError(f"{path} is not a GGUF file (bad magic); re-run `als-lm export run`")
    try:
        extra = {"type_k": GGML_TYPE_F32, "type_v": GGML_TYPE_F32} if f32_cache else {}
        return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_ctx or 512, 512), n_threads=threads,
                     n_threads_batch=threads, logits_all=logits_all, verbose=False, **extra)
    except ValueError as err:
        raise GGUFError(f"llama.cpp cannot load {path} (corrupted or truncated?): {err}") from None


def logits(llm: Llama, tokens: list[int]) -> np.ndarray:
    """Logits for every position of ``tokens`` (the model must be loaded with ``logits_all``)."""
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float64)


def perplexity(llm: Llama, tokens: np.ndarray, window: int) -> float:
    """exp(mean NLL) over non-overlapping windows, every token after a window's first one scored."""
    nll, count = 0.0, 0
    for start in range(0, len(tokens) - 1, window):
        chunk = tokens[start:start + window].tolist()
        if len(chunk) < 2:
            break
        z = logits(llm, chunk)[:-1]
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        nll -= logp[np.arange(len(chunk) - 1), chunk[1:]].sum()
        count += len(chunk) - 1
    return float(np.exp(nll / count))
