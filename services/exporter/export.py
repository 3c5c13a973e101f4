"""What the ``export`` stage (services/exporter/stages/export.py) checks before it publishes, and
the report it writes.

The GGUFs' logits must match the HF model's within a tolerance, and the tokenizer llama.cpp reads
from them must split validation text exactly as the HF tokenizer does; a failed check raises, so
nothing is published.
"""

from __future__ import annotations

import numpy as np
from transformers import PreTrainedTokenizerFast

from services.exporter.checkpoint import CheckpointError
from services.exporter.llama import GGUFError
from shared.schemas.export import ExportReport

PARITY_DOCS = 20
LOGIT_TOKENS = 64


def gguf_name(model_name: str, variant: str) -> str:
    return f"gguf/{model_name}-{variant}.gguf"


def logit_tolerance(variant: str, reference: np.ndarray) -> float:
    """How far llama.cpp's logits may stray from the HF model's before the export is refused.

    f32: llama.cpp's CPU GELU reads a table indexed by the fp16-rounded input, so activations carry
    up to 2^-11 of relative error; one such unit of the largest logit (never below 1e-3) bounds it
    (measured: ~1e-4 of the largest logit, random and trained weights alike). f16: every weight is
    rounded to 11 significant bits, and ten such units bound what a few layers add up to.
    """
    unit = 2**-11 * float(np.abs(reference).max())
    return max(1e-3, unit) if variant == "f32" else 10 * unit


def check_logits(variant: str, got: np.ndarray, reference: np.ndarray) -> float:
    """The largest |Δlogit|; a GGUFError when it exceeds ``logit_tolerance``, so nothing is published."""
    diff = float(np.abs(got - reference).max())
    tolerance = logit_tolerance(variant, reference)
    if not diff <= tolerance:  # also refuses NaN
        raise GGUFError(f"the {variant} GGUF's logits differ from the Hugging Face model's by {diff:.3g} "
                        f"(tolerance {tolerance:.3g} for logits up to {np.abs(reference).max():.3g}): "
                        "the conversion is wrong; nothing was published")
    return diff


def validation_texts(val: np.ndarray, eos: int, tokenizer: PreTrainedTokenizerFast, n: int) -> list[str]:
    docs = np.split(val, np.flatnonzero(val == eos))
    texts = [tokenizer.decode(d[d != eos].tolist()) for d in docs]
    return [t for t in texts if t.strip()][:n]


def check_tokenizer(llm, hf_tok: PreTrainedTokenizerFast, texts: list[str]) -> None:
    """llama.cpp must split text exactly as training did, or the served model sees foreign ids."""
    for i, text in enumerate(texts):
        ours = hf_tok.encode(text, add_special_tokens=False, verbose=False)
        theirs = llm.tokenize(text.encode(), add_bos=False, special=False)
        if ours != theirs:
            at = next((j for j, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
            raise CheckpointError(
                f"llama.cpp tokenizes validation document {i} differently from the HF tokenizer at token {at}: "
                f"{hf_tok.convert_ids_to_tokens(ours[at:at + 3])} vs {hf_tok.convert_ids_to_tokens(theirs[at:at + 3])}"
            )


def report_markdown(report: ExportReport) -> str:
    c = report.gpt_config
    lines = [
        "# Export report", "",
        (f"Exported from `{report.train_run}`: {c['n_layer']} layers, {c['n_head']} heads, n_embd {c['n_embd']}, "
         f"context {c['block_size']}, vocabulary {c['vocab_size']} ({report.n_params / 1e6:.2f}M parameters)."), "",
        (f"Validation perplexity by llama.cpp on the first {report.ppl_tokens} tokens of `val.bin`. "
         f"Default quantization (Ollama `latest`, Modelfile FROM): **{report.default_quant}**."), "",
        "| Variant | Size (MiB) | Perplexity | Tensor types | K-quant fallback |",
        "|---|---:|---:|---|---|",
    ]
    for v in report.variants:
        types = ", ".join(f"{k}×{n}" for k, n in v.tensor_types.items())
        fb = f"{len(v.fallback)} tensors → {', '.join(sorted(set(v.fallback.values())))}" if v.fallback else "none"
        lines.append(f"| {v.name} | {v.size_bytes / 2**20:.2f} | {v.perplexity:.3f} | {types} | {fb} |")
    fallen = [v for v in report.variants if v.fallback]
    lines.append("")
    if fallen:
        lines += [
            (f"**K-quant fallback:** n_embd {c['n_embd']} (or 4·n_embd) is not a multiple of 256, the K-quant "
             "super-block, so llama.cpp quantized those matrices with a 32-block type instead (Q4_K → Q5_0, "
             "Q5_K → Q5_1, Q6_K → Q8_0). These files are therefore not true K-quants; presets with n_embd a "
             "multiple of 256 (e.g. base, 1024) are unaffected."), "",
        ]
    diffs = ", ".join(f"{k} {v:.2e}" for k, v in report.hf_vs_gguf_max_abs_logit_diff.items())
    lines += [
        (f"Checks: GGUF vs Hugging Face max |Δlogit| on {LOGIT_TOKENS} validation tokens: {diffs}. "
         f"llama.cpp's embedded tokenizer splits {report.tokenizer_parity_docs} validation documents exactly "
         "as the Hugging Face tokenizer does."), "",
    ]
    return "\n".join(lines)
