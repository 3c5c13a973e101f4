"""The ``export`` stage: train run → HF directory, f32/f16 GGUF, quantized GGUFs, Modelfile, report.

Every file is checked before it is published: the GGUFs are loaded by llama.cpp, their logits
are compared with the HF model's, the embedded tokenizer must split validation text exactly as
the HF tokenizer does, and each variant's validation perplexity is measured.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerFast

from services.exporter import llama
from services.exporter.checkpoint import CheckpointError, load_checkpoint, read_tokenizer
from services.exporter.gguf_export import write_gguf
from services.exporter.hf import build_model, export_hf
from services.exporter.llama import GGUFError
from services.exporter.modelfile import render
from services.exporter.quantize import inspect, quantize
from services.exporter.settings import TEMPLATE, ExporterSettings
from shared import runs, stages
from shared.errors import MissingArtifact
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.export import ExportReport, GGUFVariant
from shared.store import ArtifactStore

log = logging.getLogger(__name__)

PARITY_DOCS = 20
LOGIT_TOKENS = 64


def gguf_name(model_name: str, variant: str) -> str:
    return f"gguf/{model_name}-{variant}.gguf"


def export_inputs(store: ArtifactStore, train_ref: str, checkpoint: str = "") -> tuple[Manifest, dict[str, InputRef]]:
    """model.pt (or a kept checkpoint's) and tokenizer.json of the train run, and val.bin of the
    tokenize run it trained on."""
    train = runs.resolve(store, train_ref)
    if train.stage != "train":
        raise RunNotFound(f"{train_ref!r} is a {train.stage} run, not a train run")
    weights = f"checkpoints/{checkpoint}/model.pt" if checkpoint else "model.pt"
    if checkpoint and not any(o.name == weights for o in train.outputs):
        kept = sorted(o.name.split("/")[1] for o in train.outputs if o.name.startswith("checkpoints/"))
        raise CheckpointError(f"train run {train.run} kept no checkpoint {checkpoint!r}; "
                              f"it kept: {', '.join(kept) or 'none (set keep_at_fractions)'}")
    try:
        refs = dict(zip(["model.pt", "tokenizer.json"], runs.inputs_from(train, [weights, "tokenizer.json"])))
    except KeyError as err:
        raise CheckpointError(f"train run {train.run} is incomplete: {err.args[0]}") from None
    try:
        tokenize = train.upstream("tokenize")
    except MissingArtifact:
        raise RunNotFound(f"train run {train.run} names no tokenize run among its inputs; cannot find val.bin") from None
    refs["val.bin"] = runs.inputs_from(runs.resolve(store, tokenize), ["val.bin"])[0]
    return train, refs


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


def run_export(store: ArtifactStore, settings: ExporterSettings, force: bool = False) -> tuple[Manifest, bool]:
    cfg = settings.export
    train, refs = export_inputs(store, cfg.train_run, cfg.checkpoint)

    def body(writer: RunWriter, scratch: Path) -> None:
        paths = {name: runs.fetch(store, ref, scratch / "in" / name) for name, ref in refs.items()}
        shape, sd = load_checkpoint(paths["model.pt"])
        tok = read_tokenizer(paths["tokenizer.json"], shape)
        log.info("export: %s, %d layers, n_embd %d, vocab %d", train.run, shape.n_layer, shape.n_embd,
                 shape.vocab_size)

        hf_dir = export_hf(shape, sd, tok.special, paths["tokenizer.json"], scratch / "hf")
        hf_model = build_model(shape, sd, tok.special)
        hf_tok = PreTrainedTokenizerFast.from_pretrained(hf_dir)

        files = {v: scratch / gguf_name(cfg.model_name, v) for v in ["f32", "f16", *cfg.quants]}
        files["f32"].parent.mkdir(parents=True)
        write_gguf(shape, sd, tok, files["f32"], "f32", cfg.model_name)
        write_gguf(shape, sd, tok, files["f16"], "f16", cfg.model_name)
        outcomes = {q: quantize(files["f32"], files[q], q, cfg.threads) for q in cfg.quants}

        val = np.fromfile(paths["val.bin"], dtype=np.uint16).astype(np.int64)
        texts = validation_texts(val, tok.special["eos"], hf_tok, PARITY_DOCS)
        ppl_tokens = val[: cfg.ppl_max_tokens]
        window = min(cfg.ppl_window, shape.block_size)
        probe = ppl_tokens[:LOGIT_TOKENS].tolist()
        with torch.no_grad():
            hf_logits = hf_model(torch.tensor([probe])).logits[0].double().numpy()

        variants, diffs = [], {}
        for name, path in files.items():
            llm = llama.load(path, n_ctx=window, threads=cfg.threads, logits_all=True, f32_cache=True)
            if name == "f32":
                check_tokenizer(llm, hf_tok, texts)
            if name in ("f32", "f16"):
                diffs[name] = check_logits(name, llama.logits(llm, probe), hf_logits)
            ppl = llama.perplexity(llm, ppl_tokens, window)
            llm.close()
            outcome = outcomes.get(name) or inspect(path, name)
            variants.append(GGUFVariant(
                name=name, file=gguf_name(cfg.model_name, name), size_bytes=path.stat().st_size,
                perplexity=ppl, tensor_types=outcome.tensor_types, fallback=outcome.fallback,
            ))
            log.info("export: %-7s %8.1f MiB  perplexity %.3f%s", name, path.stat().st_size / 2**20, ppl,
                     f"  ({len(outcome.fallback)} tensors fell back)" if outcome.fallback else "")

        report = ExportReport(
            train_run=train.run, gpt_config=shape.model_dump(), n_params=sum(v.numel() for v in sd.values()),
            default_quant=cfg.default_quant, variants=variants, hf_vs_gguf_max_abs_logit_diff=diffs,
            tokenizer_parity_docs=len(texts), ppl_tokens=len(ppl_tokens),
        )
        writer.put_tree("hf", hf_dir)
        for name, path in files.items():
            writer.put_file(gguf_name(cfg.model_name, name), path)
        writer.put_bytes("Modelfile", render(cfg, Path(gguf_name(cfg.model_name, cfg.default_quant)).name,
                                             shape.block_size).encode())
        writer.put_json("report.json", report.model_dump(mode="json"))
        writer.put_bytes("report.md", report_markdown(report).encode())
        writer.metrics.update({f"perplexity_{v.name}": v.perplexity for v in variants})
        writer.metrics.update({f"size_{v.name}": v.size_bytes for v in variants})
        writer.metrics["max_abs_logit_diff"] = diffs

    return runs.run_stage(store, "export", stages.fingerprint_settings("export", settings, template=TEMPLATE), list(refs.values()), body,
                          work_dir=settings.work_dir, force=force)


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
