"""A unigram or bigram model of the training split's tokens with add-k smoothing: the floor a stored
fact must beat. A candidate the corpus writes often is likely under any model; only a rank above this
model's says the stem, not the word's frequency, picked it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from services.evaluator.probe.tokens import ProbeTokenizer


class NgramBackend:
    def __init__(self, name: str, train_bin: Path, tokenizer: ProbeTokenizer, *, order: int, add_k: float):
        if order not in (1, 2):
            raise ValueError(f"order {order}: the n-gram baseline is a unigram (1) or bigram (2) model")
        self.name, self.tokenizer, self.order, self.k = name, tokenizer, order, add_k
        ids = np.fromfile(train_bin, dtype=np.uint16).astype(np.int64)
        self.vocab = max(tokenizer.vocab_size, int(ids.max()) + 1)
        self.unigram = np.bincount(ids, minlength=self.vocab)
        self.total = int(self.unigram.sum())
        self.before = np.bincount(ids[:-1], minlength=self.vocab)  # how often each token has a successor
        self.pairs, self.pair_counts = np.unique(ids[:-1] * self.vocab + ids[1:], return_counts=True)

    def _pair(self, prev: int, token: int) -> int:
        key = prev * self.vocab + token
        at = int(np.searchsorted(self.pairs, key))
        return int(self.pair_counts[at]) if at < len(self.pairs) and self.pairs[at] == key else 0

    def logprob(self, prev: int, token: int) -> float:
        if self.order == 1:
            return math.log((self.unigram[token] + self.k) / (self.total + self.k * self.vocab))
        return math.log((self._pair(prev, token) + self.k) / (self.before[prev] + self.k * self.vocab))

    def loglikelihoods(self, context: str, continuations: list[str]) -> list[float]:
        out = []
        for continuation in continuations:
            ctx, cont = self.tokenizer.split(context, continuation)
            seq = ctx + cont
            out.append(sum(self.logprob(seq[i - 1], seq[i]) for i in range(len(ctx), len(seq))))
        return out

    def next_token(self, prev: int) -> int:
        """The most likely successor (the most frequent token for a unigram model or an unseen prefix)."""
        if self.order == 2:
            lo, hi = np.searchsorted(self.pairs, [prev * self.vocab, (prev + 1) * self.vocab])
            if hi > lo:
                return int(self.pairs[lo + int(self.pair_counts[lo:hi].argmax())] % self.vocab)
        return int(self.unigram.argmax())

    def greedy(self, context: str, max_tokens: int) -> str:
        ids, _ = self.tokenizer.split(context, "")
        new: list[int] = []
        for _ in range(max_tokens):
            token = self.next_token((ids + new)[-1])
            if token == self.tokenizer.eos:
                break
            new.append(token)
        return self.tokenizer.decode(new)
