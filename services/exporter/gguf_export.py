"""Checkpoint → GGUF for llama.cpp's ``gpt2`` architecture, tokenizer embedded (§6.1, second arrow).

GGUF stores a matrix as (rows=out, cols=in), which is exactly nn.Linear's layout, so nanoGPT's
weights go in untransposed. The output head is left out: llama.cpp's gpt2 loader reuses
``token_embd`` when ``output.weight`` is absent, which is the weight tying of the checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import gguf
import numpy as np
import torch

from services.exporter.checkpoint import TokenizerInfo
from shared.schemas.model import ModelConfig

GGUF_NAMES = {
    "ln_1.weight": "attn_norm.weight",
    "ln_1.bias": "attn_norm.bias",
    "attn.c_attn.weight": "attn_qkv.weight",
    "attn.c_attn.bias": "attn_qkv.bias",
    "attn.c_proj.weight": "attn_output.weight",
    "attn.c_proj.bias": "attn_output.bias",
    "ln_2.weight": "ffn_norm.weight",
    "ln_2.bias": "ffn_norm.bias",
    "mlp.c_fc.weight": "ffn_up.weight",
    "mlp.c_fc.bias": "ffn_up.bias",
    "mlp.c_proj.weight": "ffn_down.weight",
    "mlp.c_proj.bias": "ffn_down.bias",
}
TOP = {
    "transformer.wte.weight": "token_embd.weight",
    "transformer.wpe.weight": "position_embd.weight",
    "transformer.ln_f.weight": "output_norm.weight",
    "transformer.ln_f.bias": "output_norm.bias",
}
# llama.cpp's name for the regex HF's ByteLevel(use_regex=True) splits with (llama-vocab.cpp:
# "gpt-2" -> LLAMA_VOCAB_PRE_TYPE_GPT2 -> the GPT-2 pattern).
PRE_TOKENIZER = "gpt-2"


def gguf_name(name: str) -> str:
    if name in TOP:
        return TOP[name]
    _, _, layer, rest = name.split(".", 3)
    return f"blk.{layer}.{GGUF_NAMES[rest]}"


def write_gguf(cfg: ModelConfig, sd: dict[str, torch.Tensor], tok: TokenizerInfo, path: Path,
               dtype: Literal["f32", "f16"], name: str) -> Path:
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_name(name)
    writer.add_context_length(cfg.block_size)
    writer.add_embedding_length(cfg.n_embd)
    writer.add_feed_forward_length(cfg.n_ff)
    writer.add_block_count(cfg.n_layer)
    writer.add_head_count(cfg.n_head)
    writer.add_layer_norm_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16)

    # Embedding rows beyond the tokenizer (a padded vocab) become unused tokens so the counts agree.
    tokens = tok.tokens + [f"[PAD{i}]" for i in range(len(tok.tokens), cfg.vocab_size)]
    special_ids = set(tok.special.values())
    types = [
        gguf.TokenType.CONTROL if i in special_ids
        else gguf.TokenType.UNUSED if i >= len(tok.tokens)
        else gguf.TokenType.NORMAL
        for i in range(len(tokens))
    ]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(tok.merges)
    writer.add_bos_token_id(tok.special["bos"])
    writer.add_eos_token_id(tok.special["eos"])
    writer.add_pad_token_id(tok.special["pad"])
    writer.add_unk_token_id(tok.special["unk"])
    # Training documents are separated by <|eos|> with no <|bos|>; prompts must look the same.
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)

    for key, tensor in sd.items():
        data = tensor.numpy().astype(np.float32)
        # Norms and biases stay f32 in an f16 file, as llama.cpp's own converter does.
        if dtype == "f16" and data.ndim == 2:
            data = data.astype(np.float16)
        writer.add_tensor(gguf_name(key), data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path

