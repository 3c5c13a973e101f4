"""PyTorch checkpoint → Hugging Face ``GPT2LMHeadModel`` directory (§6.1, first arrow).

nanoGPT and transformers use the same parameter names; the only difference is that GPT-2's
``Conv1D`` stores weights as (in, out), so the four linear layers per block are transposed.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from services.exporter.checkpoint import SPECIALS
from shared.schemas.model import ModelConfig

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def hf_config(cfg: ModelConfig, special: dict[str, int]) -> GPT2Config:
    return GPT2Config(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.block_size,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.n_ff,
        # The trainer's MLP uses nn.GELU(approximate="tanh"), which is GPT-2's "gelu_new" and
        # llama.cpp's GELU; the checkpoint config does not record it, the parity test guards it.
        activation_function="gelu_new",
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        bos_token_id=special["bos"],
        eos_token_id=special["eos"],
        pad_token_id=special["pad"],
        tie_word_embeddings=True,
    )


def hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {k: (v.t().contiguous() if k.endswith(CONV1D) else v) for k, v in sd.items()}
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


def build_model(cfg: ModelConfig, sd: dict[str, torch.Tensor], special: dict[str, int]) -> GPT2LMHeadModel:
    model = GPT2LMHeadModel(hf_config(cfg, special))
    missing, unexpected = model.load_state_dict(hf_state_dict(sd), strict=False)
    # GPT-2's causal-mask buffers are not parameters; anything else missing is a mapping bug.
    missing = [k for k in missing if not k.endswith((".attn.bias", ".attn.masked_bias"))]
    if missing or unexpected:
        raise RuntimeError(f"HF mapping is incomplete: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    return model.eval()


def export_hf(cfg: ModelConfig, sd: dict[str, torch.Tensor], special: dict[str, int], tokenizer_json: Path,
              out_dir: Path) -> Path:
    """Write config, safetensors weights and the tokenizer; returns ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    build_model(cfg, sd, special).save_pretrained(out_dir, safe_serialization=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(tokenizer_json),
        bos_token=SPECIALS["bos"],
        eos_token=SPECIALS["eos"],
        pad_token=SPECIALS["pad"],
        unk_token=SPECIALS["unk"],
        model_max_length=cfg.block_size,
    )
    tokenizer.save_pretrained(out_dir)
    return out_dir
