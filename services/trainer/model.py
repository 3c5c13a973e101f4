"""A GPT-2 language model in one file, in the order data meets it (after Karpathy's nanoGPT).

Parameter names follow nanoGPT (``transformer.h.{i}.attn.c_attn.weight`` ...) and every Linear
keeps PyTorch's (out, in) layout, so the exporter can map the state dict onto Hugging Face's
GPT2LMHeadModel without guessing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


@dataclass
class GPTConfig:
    n_layer: int = 24
    n_head: int = 16
    n_embd: int = 1024
    block_size: int = 1024
    vocab_size: int = 16384
    dropout: float = 0.1
    bias: bool = True  # GPT-2 has biases in Linears and LayerNorms; the HF export expects them

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

    def to_dict(self) -> dict:
        return asdict(self)


# The seed's "500M" and "1B" configurations come out at ~320M and ~1.65B parameters with a 16K
# vocabulary (GPT2.num_params prints the true figure). tiny uses a 256-token context so the
# pipeline test and the CPU demo stay fast; the others use GPT-2's 1024.
PRESETS: dict[str, dict] = {
    "tiny": {"n_layer": 4, "n_head": 4, "n_embd": 64, "block_size": 256},
    "mini": {"n_layer": 4, "n_head": 4, "n_embd": 256, "block_size": 256},
    "small": {"n_layer": 6, "n_head": 8, "n_embd": 512, "block_size": 1024},
    "base": {"n_layer": 24, "n_head": 16, "n_embd": 1024, "block_size": 1024},
    "large": {"n_layer": 32, "n_head": 16, "n_embd": 2048, "block_size": 1024},
}


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x, past: tuple[torch.Tensor, torch.Tensor] | None = None, mask: torch.Tensor | None = None):
        """The output, and the keys and values of every position seen: a KV cache for inference, where
        ``past`` holds those of the positions before ``x`` and ``mask`` says which of them each position sees."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if past is not None:  # one cached prefix (batch 1) may continue into several sequences
            k, v = (torch.cat([p.expand(B, -1, -1, -1), t], dim=2) for p, t in zip(past, (k, v)))
        if mask is None:
            # flash / memory-efficient kernels where the device has them; the causal mask is implicit
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new", so HF and llama.cpp compute the same
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-norm: LayerNorm before attention and MLP keeps the residual stream unnormalised (stable)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, past: tuple[torch.Tensor, torch.Tensor] | None = None, mask: torch.Tensor | None = None):
        attended, present = self.attn(self.ln_1(x), past, mask)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), present


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, gradient_checkpointing: bool = False):
        super().__init__()
        self.config = config
        self.gradient_checkpointing = gradient_checkpointing
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.vocab_size, config.n_embd),
            "wpe": nn.Embedding(config.block_size, config.n_embd),
            "drop": nn.Dropout(config.dropout),
            "h": nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            "ln_f": nn.LayerNorm(config.n_embd, bias=config.bias),
        })
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Tying the output projection to the token embedding saves vocab x n_embd parameters and
        # is what GPT-2 (and so the HF/GGUF export) does.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2 scales the projections that write into the residual stream by 1/sqrt(2 * n_layer):
        # each block adds two of them, and without it the stream's variance grows with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Every parameter once (the tied matrix counted once); optionally without the embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel() + self.transformer.wpe.weight.numel()
        return n

    def forward(self, idx, targets=None):
        T = idx.size(1)
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.config.block_size}")
        pos = torch.arange(T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            if self.gradient_checkpointing and self.training:
                # recompute the block's activations in backward: ~30% more compute, far less memory
                x, _ = checkpoint(block, x, use_reentrant=False)
            else:
                x, _ = block(x)
        x = self.transformer.ln_f(x)
        if targets is None:
            return self.lm_head(x[:, [-1], :]), None  # generation needs only the last position
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1))
        return logits, loss

    @torch.no_grad()
    def extend(self, idx, past: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
               pad: torch.Tensor | None = None, last_only: bool = False):
        """Inference with a KV cache: the logits at every position of ``idx`` (or its last one) after the
        positions ``past`` holds (each layer's keys and values, batch 1 or ``idx``'s), and the cache extended
        by ``idx``. ``pad``: each row's count of left-padding positions (cache and ``idx`` together), which no
        position sees and which do not count as positions. The probe reads a batch of stems once and every
        candidate after its stem."""
        B, T = idx.size()
        seen = 0 if past is None else past[0][0].size(2)
        pad = torch.zeros(B, dtype=torch.long, device=idx.device) if pad is None else pad
        columns = torch.arange(seen + T, device=idx.device)
        pos = columns[seen:][None, :] - pad[:, None]
        if int(pos[:, -1].max()) >= self.config.block_size:
            raise ValueError(f"{int(pos[:, -1].max()) + 1} positions exceed block_size {self.config.block_size}")
        key, query = columns[None, None, :], columns[seen:][None, :, None]
        # a row's key is seen from its first real position on, causally; a padding position sees itself
        # (finite values that no real position reads)
        mask = ((key >= pad[:, None, None]) & (key <= query)) | (key == query)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos.clamp(min=0))
        present = []
        for i, block in enumerate(self.transformer.h):
            x, kv = block(x, None if past is None else past[i], mask[:, None])
            present.append(kv)
        x = self.transformer.ln_f(x[:, [-1], :] if last_only else x)
        return self.lm_head(x), present

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Decay matrices (Linear and Embedding weights); not biases or LayerNorm gains."""
        decay = [p for p in self.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.parameters() if p.dim() < 2]
        return [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]

    def flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), PaLM appendix B, as in nanoGPT's MFU."""
        c = self.config
        return 6 * self.num_params() + 12 * c.n_layer * c.n_embd * c.block_size
