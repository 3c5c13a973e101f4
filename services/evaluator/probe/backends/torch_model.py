"""The from-scratch model in process: a trainer checkpoint read by the exporter's checked loader and run
by the trainer's own GPT class, so the probe needs no export and sees exactly the trained weights.

Scoring is batched for speed and computes what one forward per candidate would: each stem is read once
(the model's KV cache) and its candidates after it, many items' stems at once (left-padded, the padding
masked and not counted as positions); tests/evaluator/probe/test_torch_backend.py holds it to the
one-forward-per-candidate reference."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from services.evaluator.probe.tokens import ProbeTokenizer
from services.exporter.checkpoint import load_checkpoint
from services.trainer.model import GPT, GPTConfig
from shared.schemas.model import ModelConfig

BATCH_ITEMS = 16
"""Stems read in one forward: enough to turn the CPU's matrix-vector products into matrix products, few
enough that their candidates' caches stay small (16 x 10 candidates x the stem's tokens)."""


def _model(config: ModelConfig, device: str) -> GPT:
    # Biases always on: the loader fills a bias-free model's with zeros, which computes the same.
    return GPT(GPTConfig(**config.model_copy(update={"bias": True, "dropout": 0.0}).model_dump())).to(device).eval()


class TorchBackend:
    """A GPT checkpoint (or a random initialisation of its shape) as a ``ProbeBackend``."""

    def __init__(self, name: str, config: ModelConfig, model: GPT, tokenizer: ProbeTokenizer):
        self.name, self.config, self.model, self.tokenizer = name, config, model, tokenizer
        self.block = config.block_size
        self.device = next(model.parameters()).device

    @classmethod
    def from_checkpoint(cls, name: str, path: Path, tokenizer: ProbeTokenizer, device: str = "cpu") -> TorchBackend:
        config, state = load_checkpoint(path)
        model = _model(config, device)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"lm_head.weight"}:  # lm_head is tied to wte, which is loaded
            raise RuntimeError(f"{path}: state dict does not fit the model: missing {missing}, unexpected "
                               f"{unexpected}")
        return cls(name, config, model, tokenizer)

    @classmethod
    def random_init(cls, name: str, config: ModelConfig, tokenizer: ProbeTokenizer, seed: int,
                    device: str = "cpu") -> TorchBackend:
        """The trainer's initialisation of the same shape: the curve's point before any token."""
        torch.manual_seed(seed)
        return cls(name, config, _model(config, device), tokenizer)

    def _tensor(self, rows: list[list[int]], width: int, pad_left: bool = False) -> torch.Tensor:
        out = torch.full((len(rows), width), self.tokenizer.eos, dtype=torch.long)
        for row, ids in enumerate(rows):
            if ids:
                out[row, slice(width - len(ids), width) if pad_left else slice(0, len(ids))] = torch.tensor(ids)
        return out.to(self.device)

    def loglikelihoods(self, context: str, continuations: list[str]) -> list[float]:
        return self.loglikelihoods_many([(context, continuations)])[0]

    def loglikelihoods_many(self, requests: list[tuple[str, list[str]]]) -> list[list[float]]:
        """``loglikelihoods`` of many (context, continuations) at once, in their order."""
        out: list[list[float]] = [[0.0] * len(conts) for _, conts in requests]
        # (prefix, [(request, candidate, continuation tokens)]): the last block_size + 1 tokens of each
        # sequence are read, the context cut from the left, never the candidate; those that fit whole share
        # one read of the stem.
        reads: list[tuple[list[int], list[tuple[int, int, list[int]]]]] = []
        for r, (context, continuations) in enumerate(requests):
            pairs = [self.tokenizer.split(context, c) for c in continuations]
            whole = [(r, i, cont) for i, (ctx, cont) in enumerate(pairs) if len(ctx) + len(cont) <= self.block + 1]
            if whole:
                reads.append((pairs[0][0], whole))
            reads.extend(((ctx + cont)[-(self.block + 1):-len(cont)], [(r, i, cont)])
                         for i, (ctx, cont) in enumerate(pairs) if len(ctx) + len(cont) > self.block + 1)
        reads.sort(key=lambda read: len(read[0]))  # stems of similar length share a batch: little padding
        for start in range(0, len(reads), BATCH_ITEMS):
            chunk = reads[start:start + BATCH_ITEMS]
            for (r, i, _), ll in zip((c for _, cs in chunk for c in cs), self._after(chunk)):
                out[r][i] = ll
        return out

    def _after(self, chunk: list[tuple[list[int], list[tuple[int, int, list[int]]]]]) -> list[float]:
        """log P(continuation | its prefix) for every continuation of the chunk: one forward of the prefixes
        (left-padded) gives every first token and the cache; one forward per continuation length, of those
        continuations without their last token after their prefix's cache, gives the rest."""
        width = max(len(prefix) for prefix, _ in chunk)
        pad = torch.tensor([width - len(prefix) for prefix, _ in chunk], device=self.device)
        logits, past = self.model.extend(self._tensor([p for p, _ in chunk], width, pad_left=True), pad=pad,
                                         last_only=True)
        first = F.log_softmax(logits[:, -1].float(), dim=-1)
        rows = [(row, cont) for row, (_, conts) in enumerate(chunk) for _, _, cont in conts]
        out = first[torch.tensor([row for row, _ in rows], device=self.device),
                    torch.tensor([cont[0] for _, cont in rows], device=self.device)].tolist()
        by_length: dict[int, list[int]] = {}  # the rest of each candidate, read without padding
        for n, (_, cont) in enumerate(rows):
            if len(cont) > 1:  # most candidates are one or two tokens
                by_length.setdefault(len(cont), []).append(n)
        for members in by_length.values():
            which = torch.tensor([rows[n][0] for n in members], device=self.device)
            inputs = torch.tensor([rows[n][1][:-1] for n in members], device=self.device)
            logits, _ = self.model.extend(inputs, [(k[which], v[which]) for k, v in past], pad=pad[which])
            logprobs = F.log_softmax(logits.float(), dim=-1)
            targets = torch.tensor([rows[n][1][1:] for n in members], device=self.device)
            picked = logprobs.gather(-1, targets[..., None])[..., 0].sum(dim=1).tolist()
            for n, value in zip(members, picked):
                out[n] += value
        return out

    def greedy_many(self, contexts: list[str], max_tokens: int) -> list[str]:
        """``greedy`` of many contexts: a batch of stems read at once, then one token of every row a step. A
        context whose continuation would slide past the block is continued alone."""
        ids = [self.tokenizer.split(context, "")[0] for context in contexts]
        out: list[str | None] = [None] * len(ids)
        fits = sorted((i for i, seq in enumerate(ids) if len(seq) + max_tokens <= self.block), key=lambda i: len(ids[i]))
        for i in set(range(len(ids))) - set(fits):
            out[i] = self.greedy(contexts[i], max_tokens)
        for start in range(0, len(fits), BATCH_ITEMS):
            chunk = fits[start:start + BATCH_ITEMS]
            width = max(len(ids[i]) for i in chunk)
            pad = torch.tensor([width - len(ids[i]) for i in chunk], device=self.device)
            logits, past = self.model.extend(self._tensor([ids[i] for i in chunk], width, pad_left=True), pad=pad,
                                             last_only=True)
            new: list[list[int]] = [[] for _ in chunk]
            done = [False] * len(chunk)
            for step in range(max_tokens):
                tokens = logits[:, -1].argmax(dim=-1).tolist()
                for row, token in enumerate(tokens):
                    done[row] = done[row] or token == self.tokenizer.eos
                    if not done[row]:
                        new[row].append(token)
                if all(done) or step == max_tokens - 1:
                    break
                logits, past = self.model.extend(self._tensor([[t] for t in tokens], 1), past, pad=pad, last_only=True)
            for i, tokens in zip(chunk, new):
                out[i] = self.tokenizer.decode(tokens)
        return out

    def greedy(self, context: str, max_tokens: int) -> str:
        """The greedy continuation, reading one token at a time after the cache while the context fits the
        block, and the last block_size tokens afresh once it slides."""
        ids, _ = self.tokenizer.split(context, "")
        window = ids[-self.block:]
        logits, past = self.model.extend(self._tensor([window], len(window)), last_only=True)
        new: list[int] = []
        while len(new) < max_tokens:
            token = int(logits[0, -1].argmax())
            if token == self.tokenizer.eos:
                break
            new.append(token)
            if len(new) == max_tokens:
                break
            if len(window) < self.block:
                window = window + [token]
                logits, past = self.model.extend(self._tensor([[token]], 1), past, last_only=True)
            else:
                window = (ids + new)[-self.block:]
                logits, past = self.model.extend(self._tensor([window], len(window)), last_only=True)
        return self.tokenizer.decode(new)
