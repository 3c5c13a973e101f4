"""Random training windows from a memory-mapped uint16 token shard (nanoGPT's ``get_batch``).

Each rank draws from its own generator seeded with (seed, rank), so data-parallel ranks see
different windows; the generator's state goes into every checkpoint, so a resumed run draws
exactly the windows the uninterrupted run would have drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from shared.errors import InvalidInput


class TokenShard:
    """A token file validated against the model it will feed: every id < vocab, room for a window."""

    def __init__(self, path: Path, block_size: int, vocab_size: int):
        path = Path(path)
        size = path.stat().st_size
        if size % 2:
            raise InvalidInput(f"{path.name}: {size} bytes is not a whole number of uint16 tokens")
        self.tokens = np.memmap(path, dtype=np.uint16, mode="r")
        self.path, self.block_size = path, block_size
        if len(self.tokens) < block_size + 1:
            raise InvalidInput(
                f"{path.name} has {len(self.tokens)} tokens, fewer than one context window "
                f"(block_size {block_size} + 1); use a smaller --block-size or more data"
            )
        top = int(self.tokens.max())
        if top >= vocab_size:
            raise InvalidInput(
                f"{path.name} contains token id {top}, outside the model's vocabulary of {vocab_size}; "
                "the shards and the tokenizer's meta.json come from different tokenize runs"
            )

    def windows(self, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-token targets for windows beginning at ``starts``."""
        x = np.stack([self.tokens[s : s + self.block_size] for s in starts]).astype(np.int64)
        y = np.stack([self.tokens[s + 1 : s + 1 + self.block_size] for s in starts]).astype(np.int64)
        return torch.from_numpy(x), torch.from_numpy(y)

    def random_starts(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(0, len(self.tokens) - self.block_size, size=n)


class Batches:
    """The training stream of one rank: an endless sequence of random micro-batches."""

    def __init__(self, shard: TokenShard, micro_batch: int, seed: int, rank: int):
        self.shard, self.micro_batch = shard, micro_batch
        self.rng = np.random.default_rng([seed, rank])
        self.drawn = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        self.drawn += 1
        return self.shard.windows(self.shard.random_starts(self.rng, self.micro_batch))

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "drawn": self.drawn}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.drawn = state["drawn"]


def eval_batches(shard: TokenShard, n_batches: int, micro_batch: int, seed: int):
    """The same validation windows at every evaluation, so successive losses are comparable."""
    rng = np.random.default_rng([seed, 0xE7A1])
    for _ in range(n_batches):
        yield shard.windows(shard.random_starts(rng, micro_batch))


def unigram_loss(train: TokenShard, val: TokenShard, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of the validation tokens under the training unigram frequencies.

    The floor any language model must beat: it knows how common each token is and nothing else.
    Add-one smoothing keeps tokens unseen in training finite.
    """
    counts = np.bincount(train.tokens, minlength=vocab_size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-log_probs[np.asarray(val.tokens)].mean())
