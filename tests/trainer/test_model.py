"""The GPT-2 graph: names the exporter relies on, true sizes of the presets, init, tying, checkpointing."""

from __future__ import annotations

import math

import pytest
import torch

from services.trainer.model import GPT, PRESETS, GPTConfig


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**{**PRESETS["tiny"], "block_size": 16, "vocab_size": 100, **kw})


def expected_params(n_layer, n_embd, block_size, vocab_size) -> int:
    per_block = 12 * n_embd**2 + 13 * n_embd  # qkv + proj + 4x MLP, their biases, two LayerNorms
    return n_layer * per_block + vocab_size * n_embd + block_size * n_embd + 2 * n_embd


@pytest.mark.parametrize("preset, approx", [("tiny", 1.27e6), ("small", 27.8e6), ("base", 320.1e6), ("large", 1647.1e6)])
def test_preset_parameter_counts_with_16k_vocab(preset, approx):
    with torch.device("meta"):  # base and large without allocating their weights
        model = GPT(GPTConfig(**PRESETS[preset], vocab_size=16384))
    c = model.config
    assert model.num_params() == expected_params(c.n_layer, c.n_embd, c.block_size, 16384)
    assert model.num_params() == pytest.approx(approx, rel=0.01)


def test_state_dict_uses_nanogpt_names_linear_layout_and_tied_head():
    model = GPT(tiny(n_layer=2))
    sd = model.state_dict()
    for name in ("transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight", "lm_head.weight",
                 "transformer.h.1.ln_1.bias", "transformer.h.1.attn.c_attn.bias", "transformer.h.1.mlp.c_proj.bias"):
        assert name in sd
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (3 * 64, 64)  # nn.Linear: (out, in)
    assert sd["transformer.h.0.mlp.c_fc.weight"].shape == (4 * 64, 64)
    assert model.lm_head.weight is model.transformer.wte.weight


def test_residual_projections_get_the_scaled_gpt2_init():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=8, n_head=4, n_embd=128, block_size=16, vocab_size=100))
    proj = torch.cat([b.mlp.c_proj.weight.flatten() for b in model.transformer.h])
    assert proj.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.05)
    assert model.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_untrained_loss_is_near_uniform_and_weight_decay_skips_biases_and_norms():
    torch.manual_seed(0)
    model = GPT(tiny())
    idx, targets = torch.randint(0, 100, (2, 2, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (2, 16, 100)
    assert loss.item() == pytest.approx(math.log(100), abs=0.1)
    decay, no_decay = model.param_groups(0.1)
    assert all(p.dim() == 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_gradient_checkpointing_gives_the_same_gradients():
    idx = torch.randint(0, 100, (2, 16))
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = GPT(tiny(dropout=0.0), gradient_checkpointing=checkpointing)
        model(idx, idx)[1].backward()
        grads.append(model.transformer.h[0].attn.c_attn.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_sequence_longer_than_context_is_refused():
    with pytest.raises(ValueError, match="exceeds block_size 16"):
        GPT(tiny())(torch.zeros(1, 17, dtype=torch.long))
