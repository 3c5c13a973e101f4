"""The ``export`` stage: train run → HF directory, f32/f16 GGUF, quantized GGUFs, Modelfile, report
(docs/export.md).

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
from services.exporter.export import (
    LOGIT_TOKENS,
    PARITY_DOCS,
    check_logits,
    check_tokenizer,
    gguf_name,
    report_markdown,
    validation_texts,
)
from services.exporter.gguf_export import write_gguf
from services.exporter.hf import build_model, export_hf
from services.exporter.modelfile import render
from services.exporter.quantize import inspect, quantize
from services.exporter.settings import TEMPLATE, ExporterSettings
from shared import runs, stages
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.export import ExportReport, GGUFVariant
from shared.store import ArtifactStore

log = logging.getLogger(__name__)


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
    # the corpus's shards, or the extraction arm's (docs/extract.md), whose val.bin is the corpus's
    found = sorted({i.run for i in train.inputs if i.stage in ("tokenize", "extract-tokens")})
    if len(found) != 1:
        raise RunNotFound(f"train run {train.run} names no one tokenize run among its inputs; cannot find val.bin")
    tokenize = found[0]
    refs["val.bin"] = runs.inputs_from(runs.resolve(store, tokenize), ["val.bin"])[0]
    return train, refs


def run(store: ArtifactStore, settings: ExporterSettings, *, force: bool = False) -> tuple[Manifest, bool]:
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

    return runs.run_stage(store, "export", stages.fingerprint_settings("export", settings, template=TEMPLATE),
                          list(refs.values()), body, work_dir=settings.work_dir, force=force)
