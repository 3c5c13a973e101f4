"""The export stage: HF and GGUF files that compute what the trained model computes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from services.exporter import llama
from services.exporter.checkpoint import CheckpointError, load_checkpoint, read_tokenizer
from services.exporter.export import check_logits
from services.exporter.gguf_export import write_gguf
from services.exporter.llama import GGUFError
from services.exporter.modelfile import parameters, render
from services.exporter.quantize import quantize
from services.exporter.settings import TEMPLATE, ExportConfig, ExporterSettings
from services.exporter.stages import export
from shared import runs
from shared.runs import RunNotFound
from shared.schemas.export import ExportReport
from shared.store import LocalStore
from tests.exporter.conftest import MEDICAL_TEXT, publish_train_run, tiny_state, trained_state


@pytest.fixture(scope="module")
def files(exported, tmp_path_factory):
    """The export run's files, downloaded and hash-checked the way a consumer gets them."""
    dest = tmp_path_factory.mktemp("fetched")
    for ref in exported["manifest"].outputs:
        runs.fetch(exported["store"], ref, dest / ref.name)
    return dest


def nanogpt_logits(state: dict, ids: list[int]) -> np.ndarray:
    from services.trainer.model import GPT, GPTConfig

    model = GPT(GPTConfig(**state["config"])).eval()
    model.load_state_dict(state["model"])
    t = model.transformer
    with torch.no_grad():
        x = t.wte(torch.tensor([ids])) + t.wpe(torch.arange(len(ids)))
        for block in t.h:
            x, _ = block(x)  # a block returns its keys and values too (the probe's cache)
        return model.lm_head(t.ln_f(x))[0].double().numpy()


@pytest.fixture(scope="module")
def medical_ids(files):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast.from_pretrained(files / "hf").encode(MEDICAL_TEXT, add_special_tokens=False)


def test_hf_export_computes_the_pytorch_model_logits(exported, files, medical_ids):
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(files / "hf").eval()
    with torch.no_grad():
        ours = hf(torch.tensor([medical_ids])).logits[0].double().numpy()
    assert np.abs(ours - nanogpt_logits(exported["state"], medical_ids)).max() <= 1e-4


@pytest.mark.parametrize("defect", ["ln_1 and ln_2 swapped", "attention output bias dropped", "MLP weight zeroed"])
def test_the_parity_checks_would_catch_a_swapped_dropped_or_zeroed_tensor(exported, medical_ids, defect):
    """An exporter with one of these mapping bugs computes the logits of the broken state below: on
    the trained model they differ from the right ones by far more than the HF (1e-4) and GGUF f32
    (1e-3) tolerances. (On a freshly initialised model the swap and the dropped bias change nothing.)"""
    state = exported["state"]
    broken = {k: v.clone() for k, v in state["model"].items()}
    p = "transformer.h.1."
    if defect == "ln_1 and ln_2 swapped":
        for part in ("weight", "bias"):
            broken[f"{p}ln_1.{part}"], broken[f"{p}ln_2.{part}"] = broken[f"{p}ln_2.{part}"], broken[f"{p}ln_1.{part}"]
    elif defect == "attention output bias dropped":
        broken[f"{p}attn.c_proj.bias"].zero_()
    else:
        broken[f"{p}mlp.c_fc.weight"].zero_()
    gap = np.abs(nanogpt_logits({**state, "model": broken}, medical_ids) - nanogpt_logits(state, medical_ids)).max()
    assert gap > 100 * 1e-3, gap


def test_a_model_without_biases_is_exported_with_zero_biases_and_the_same_logits(tokenizer, texts, medical_ids,
                                                                                 tmp_path):
    from services.exporter.hf import build_model

    state = trained_state(tokenizer, texts, steps=100, bias=False)
    assert not any(k.endswith(".bias") for k in state["model"])
    torch.save({"config": state["config"], "model": state["model"]}, tmp_path / "model.pt")
    cfg, sd = load_checkpoint(tmp_path / "model.pt")
    assert torch.count_nonzero(sd["transformer.h.0.attn.c_attn.bias"]) == 0  # filled in, as GPT-2 needs them
    hf = build_model(cfg, sd, {"bos": 0, "eos": 1, "pad": 2, "unk": 3})
    with torch.no_grad():
        ours = hf(torch.tensor([medical_ids])).logits[0].double().numpy()
    assert np.abs(ours - nanogpt_logits(state, medical_ids)).max() <= 1e-4


def test_hf_tokenizer_keeps_the_special_tokens(files):
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(files / "hf")
    assert [tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.unk_token_id] == [0, 1, 2, 3]


def test_gguf_tokenizes_medical_text_like_hf(files, medical_ids):
    llm = llama.load(files / "gguf" / "als-lm-f32.gguf", n_ctx=256, threads=2)
    assert llm.tokenize(MEDICAL_TEXT.encode(), add_bos=False, special=False) == medical_ids
    assert llm.token_bos() == 0 and llm.token_eos() == 1


def test_gguf_logits_agree_with_the_pytorch_model(exported, files, medical_ids):
    reference = nanogpt_logits(exported["state"], medical_ids)
    # llama.cpp's CPU GELU reads a table indexed by the fp16-rounded input: up to 2^-11 of the largest
    # logit (the trained model's reach ~10; measured 1.9e-3), and never less than 1e-3.
    f32 = llama.load(files / "gguf" / "als-lm-f32.gguf", 256, 2, logits_all=True, f32_cache=True)
    assert np.abs(llama.logits(f32, medical_ids) - reference).max() <= max(1e-3, 2**-11 * np.abs(reference).max())
    # f16 keeps 11 significant bits: each weight is off by up to 2^-11 of itself. Ten such units of
    # the largest logit bounds what a few layers of rounded matmuls can add up to (measured: ~4e-4).
    f16 = llama.load(files / "gguf" / "als-lm-f16.gguf", 256, 2, logits_all=True, f32_cache=True)
    tolerance = 10 * 2**-11 * np.abs(reference).max()
    assert np.abs(llama.logits(f16, medical_ids) - reference).max() <= tolerance


def test_logits_beyond_the_tolerance_refuse_the_export():
    reference = np.linspace(-18.0, 18.0, 64 * 8).reshape(64, 8)  # trained tiny: |logit| up to ~18
    assert check_logits("f32", reference + 1.6e-3, reference) == pytest.approx(1.6e-3)  # the demo's
    with pytest.raises(GGUFError, match=r"f32 GGUF's logits differ .* by 0\.05"):
        check_logits("f32", reference + 0.05, reference)
    with pytest.raises(GGUFError, match="f16"):
        check_logits("f16", reference + 1.0, reference)
    with pytest.raises(GGUFError):
        check_logits("f32", reference * np.nan, reference)


def test_report_tables_every_variant_and_the_k_quant_fallback(exported, files, medical_ids):
    report = ExportReport.model_validate_json((files / "report.json").read_text())
    by_name = {v.name: v for v in report.variants}
    assert list(by_name) == ["f32", "f16", "Q8_0", "Q5_K_M", "Q4_K_M"]
    # The model has learnt its text: far below the vocabulary size that all-zero weights (a uniform
    # guess) would give, so a variant that lost its weights cannot pass the checks below.
    vocab = exported["state"]["config"]["vocab_size"]
    assert by_name["f32"].perplexity < vocab / 10
    for v in report.variants:
        assert v.size_bytes == (files / v.file).stat().st_size
        # Quantization must not wreck the model: within 1 % of the f32 perplexity. Measured on this
        # model (issue 25): the quants move it by at most +0.17 %; ln_1/ln_2 swapped in every block
        # by +1.75 % (which a 2 % bound let through), blocks 0 and 1 swapped x5.6, all-zero weights x13.
        assert abs(v.perplexity / by_name["f32"].perplexity - 1) < 0.01
    # ...and the quants compute what the f32 file computes: Q4_K_M's logits stray up to 0.3 from it;
    # the ln swap moves them by 1.3.
    f32 = llama.load(files / by_name["f32"].file, 256, 1, logits_all=True, f32_cache=True)
    reference = llama.logits(f32, medical_ids)
    for quant in ("Q8_0", "Q5_K_M", "Q4_K_M"):
        llm = llama.load(files / by_name[quant].file, 256, 1, logits_all=True, f32_cache=True)
        assert np.abs(llama.logits(llm, medical_ids) - reference).max() < 0.5, quant
    # tiny's n_embd (64) is not a multiple of 256: matrices with 64-wide rows fall back, ffn_down
    # (rows of 4*64 = 256) stays a real K-quant
    for quant in ("Q5_K_M", "Q4_K_M"):
        fallback = by_name[quant].fallback
        assert "blk.0.attn_qkv.weight" in fallback and "blk.0.ffn_down.weight" not in fallback
    assert not by_name["Q8_0"].fallback
    assert by_name["f16"].size_bytes < by_name["f32"].size_bytes
    assert by_name["Q4_K_M"].size_bytes <= by_name["Q5_K_M"].size_bytes <= by_name["Q8_0"].size_bytes
    md = (files / "report.md").read_text()
    assert "K-quant fallback" in md and "| Q5_K_M |" in md


def test_k_quants_need_no_fallback_when_rows_are_multiples_of_256(tmp_path, tokenizer):
    state = tiny_state(tokenizer.get_vocab_size(), n_embd=256, n_layer=1)
    torch.save(state, tmp_path / "model.pt")
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    shape, sd = load_checkpoint(tmp_path / "model.pt")
    src = write_gguf(shape, sd, read_tokenizer(tmp_path / "tokenizer.json", shape), tmp_path / "f32.gguf", "f32", "t")
    outcome = quantize(src, tmp_path / "q4.gguf", "Q4_K_M", threads=2)
    assert outcome.fallback == {} and outcome.tensor_types.get("Q4_K", 0) > 0


def test_modelfile_follows_the_settings(exported, files):
    text = (files / "Modelfile").read_text()
    settings = exported["settings"]
    assert text.startswith("FROM ./als-lm-Q5_K_M.gguf\n")
    for key, value in parameters(settings.export, 256).items():
        for v in value if isinstance(value, list) else [value]:
            assert f"PARAMETER {key} {json.dumps(v) if isinstance(v, str) else v}\n" in text
    assert "PARAMETER num_ctx 256" in text  # capped at the model's block_size
    assert f'TEMPLATE """{TEMPLATE}"""' in text
    assert "not a medical resource" in text


def test_serving_threads_appear_in_the_modelfile_only_when_set():
    """None leaves the thread count to Ollama (every physical core); a number pins it."""
    assert "num_thread" not in render(ExportConfig(), "m.gguf", 1024)
    text = render(ExportConfig(num_thread=1, num_batch=128), "m.gguf", 1024)
    assert "PARAMETER num_thread 1\n" in text and "PARAMETER num_batch 128\n" in text


def test_unchanged_export_is_skipped(exported):
    manifest, ran = export.run(exported["store"], exported["settings"])
    assert not ran and manifest.run_id == exported["manifest"].run_id


def test_a_changed_serving_template_exports_again(exported, monkeypatch):
    """The template is written into the Modelfile and the Ollama model, so it is part of the fingerprint."""
    monkeypatch.setattr("services.exporter.stages.export.TEMPLATE", TEMPLATE + " ")
    manifest, ran = export.run(exported["store"], exported["settings"])
    assert ran and manifest.settings["template"] == TEMPLATE + " "


def test_no_train_run_says_what_to_run(tmp_path):
    settings = ExporterSettings(work_dir=tmp_path / "work")
    with pytest.raises(RunNotFound, match="als-lm train"):
        export.run(LocalStore(tmp_path / "empty"), settings)


def test_tokenizer_from_another_run_is_refused(tmp_path, tokenizer, texts):
    store = LocalStore(tmp_path / "a")
    publish_train_run(store, tmp_path / "in", tiny_state(500), tokenizer, texts[:2])
    with pytest.raises(CheckpointError, match="different runs"):
        export.run(store, ExporterSettings(work_dir=tmp_path / "work"))


def test_cli_reports_a_broken_checkpoint_without_traceback(tmp_path, tokenizer, texts):
    state = tiny_state(tokenizer.get_vocab_size())
    del state["model"]["transformer.h.1.mlp.c_fc.weight"]
    publish_train_run(LocalStore(tmp_path / "store"), tmp_path / "in", state, tokenizer, texts[:2])
    env = {**os.environ, "ALS_STORE__ROOT": str(tmp_path / "store"), "ALS_WORK_DIR": str(tmp_path / "work")}
    proc = subprocess.run([sys.executable, "-m", "als_lm", "export", "run"], check=False, capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1
    assert "lacks 1 tensor(s)" in proc.stderr and "transformer.h.1.mlp.c_fc.weight" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupted_gguf_is_named(files, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes((files / "gguf" / "als-lm-Q8_0.gguf").read_bytes()[:5000])
    with pytest.raises(llama.GGUFError, match="broken.gguf"):
        llama.load(broken, 256, 2)
    (tmp_path / "not.gguf").write_text("hello")
    with pytest.raises(llama.GGUFError, match="not a GGUF file"):
        llama.load(tmp_path / "not.gguf", 256, 2)
