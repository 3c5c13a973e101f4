"""Read the train stage's ``model.pt`` and check it against the contract before anything is written.

The exporter maps the nanoGPT state dict by name, so it never imports trainer code; a missing
tensor, a wrong shape or a tokenizer that does not fit the embedding stops the export here.
"""

from __future__ import annotations

import json
import pickle
import zipfile
from pathlib import Path

import torch
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInput
from shared.schemas.model import ModelConfig


class CheckpointError(InvalidInput):
    """A checkpoint or tokenizer that cannot be exported; the message names the problem."""


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the exporter needs, in nn.Linear (out, in) layout; biases only when ``cfg.bias``."""
    e, ff = cfg.n_embd, cfg.n_ff
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (cfg.vocab_size, e),
        "transformer.wpe.weight": (cfg.block_size, e),
        "transformer.ln_f.weight": (e,),
    }
    if cfg.bias:
        shapes["transformer.ln_f.bias"] = (e,)
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        layer = {
            "ln_1": ((e,), (e,)),
            "attn.c_attn": ((3 * e, e), (3 * e,)),
            "attn.c_proj": ((e, e), (e,)),
            "ln_2": ((e,), (e,)),
            "mlp.c_fc": ((ff, e), (ff,)),
            "mlp.c_proj": ((e, ff), (e,)),
        }
        for name, (w, b) in layer.items():
            shapes[f"{p}{name}.weight"] = w
            if cfg.bias:
                shapes[f"{p}{name}.bias"] = b
    return shapes


def load_checkpoint(path: Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """The config and a complete fp32 state dict: zero biases filled in for ``bias=False`` models,
    because GPT-2 in both transformers and llama.cpp always has them."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path} cannot be read by torch.load: {err}") from None
    if not isinstance(blob, dict) or "config" not in blob or "model" not in blob:
        raise CheckpointError(f"checkpoint {path} is not {{'config': ..., 'model': state_dict}} (train contract)")
    try:
        cfg = ModelConfig.model_validate(blob["config"])
    except ValidationError as err:
        raise CheckpointError(f"checkpoint {path} has an invalid config: {err}") from None
    # torch.compile prefixes every name; the weights are the same.
    sd = {k.removeprefix("_orig_mod."): v.float() for k, v in blob["model"].items()}
    expected = expected_shapes(cfg)
    missing = sorted(set(expected) - set(sd))
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {len(missing)} tensor(s) the config implies, e.g. {', '.join(missing[:3])}"
        )
    wrong = [f"{k} {tuple(sd[k].shape)} != {v}" for k, v in expected.items() if tuple(sd[k].shape) != v]
    if wrong:
        raise CheckpointError(f"checkpoint {path} does not match its config: {'; '.join(wrong[:3])}")
    if "lm_head.weight" in sd and not torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"]):
        raise CheckpointError(f"checkpoint {path}: lm_head.weight is not tied to transformer.wte.weight")
    full = expected_shapes(cfg.model_copy(update={"bias": True}))
    return cfg, {name: sd[name] if name in sd else torch.zeros(shape) for name, shape in full.items()}


class TokenizerInfo(BaseModel):
    """What the GGUF and the HF export need from ``tokenizer.json``."""

    tokens: list[str]
    special: dict[str, int]
    merges: list[str]
    normalizer: str | None


SPECIALS = {"bos": "<|bos|>", "eos": "<|eos|>", "pad": "<|pad|>", "unk": "<|unk|>"}


def read_tokenizer(path: Path, cfg: ModelConfig) -> TokenizerInfo:
    """Vocabulary, merges and special ids of a byte-level BPE, checked against the model."""
    try:
        data = json.loads(Path(path).read_text())
        model = data["model"]
    except (OSError, ValueError, KeyError) as err:
        raise CheckpointError(f"tokenizer {path} is not a tokenizers JSON file: {err}") from None
    if model.get("type") != "BPE":
        raise CheckpointError(f"tokenizer {path} is a {model.get('type')} model; the GGUF export needs BPE")
    pre = data.get("pre_tokenizer") or {}
    byte_level = [p for p in pre.get("pretokenizers", [pre]) if p.get("type") == "ByteLevel"]
    if not byte_level or byte_level[0].get("add_prefix_space") or not byte_level[0].get("use_regex", True):
        raise CheckpointError(
            f"tokenizer {path} pre-tokenizer {pre.get('type')} is not ByteLevel(add_prefix_space=False, "
            "use_regex=True), the only one that maps to llama.cpp's 'gpt-2' pre-tokenizer"
        )
    vocab: dict[str, int] = dict(model["vocab"])
    for added in data.get("added_tokens", []):
        vocab[added["content"]] = added["id"]
    ids = sorted(vocab.values())
    if ids != list(range(len(ids))):
        raise CheckpointError(f"tokenizer {path} ids are not contiguous from 0")
    if len(ids) > cfg.vocab_size:
        raise CheckpointError(
            f"tokenizer {path} has {len(ids)} tokens but the checkpoint's embedding has only {cfg.vocab_size} rows: "
            "they come from different runs"
        )
    special = {}
    for role, text in SPECIALS.items():
        if text not in vocab:
            raise CheckpointError(f"tokenizer {path} has no {text} token")
        special[role] = vocab[text]
    tokens = [""] * len(ids)
    for text, i in vocab.items():
        tokens[i] = text
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    normalizer = (data.get("normalizer") or {}).get("type")
    return TokenizerInfo(tokens=tokens, special=special, merges=merges, normalizer=normalizer)
