"""The from-scratch model in process: a trainer checkpoint read by the exporter's checked loader and run
by the trainer's own GPT class, so the probe needs no export and sees exactly the trained weights."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from services.evaluator.probe.tokens import ProbeTokenizer
from services.exporter.checkpoint import load_checkpoint
from services.trainer.model import GPT, GPTConfig
from shared.schemas.model import ModelConfig


def _model(config: ModelConfig) -> GPT:
    # Biases always on: the loader fills a bias-free model's with zeros, which computes the same.
    return GPT(GPTConfig(**config.model_copy(update={"bias": True, "dropout": 0.0}).model_dump())).eval()


class TorchBackend:
    """A GPT checkpoint (or a random initialisation of its shape) as a ``ProbeBackend``."""

    def __init__(self, name: str, config: ModelConfig, model: GPT, tokenizer: ProbeTokenizer):
        self.name, self.config, self.model, self.tokenizer = name, config, model, tokenizer
        self.block = config.block_size

    @classmethod
    def from_checkpoint(cls, name: str, path: Path, tokenizer: ProbeTokenizer) -> TorchBackend:
        config, state = load_checkpoint(path)
        model = _model(config)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) != {"lm_head.weight"}:  # lm_head is tied to wte, which is loaded
            raise RuntimeError(f"{path}: state dict does not fit the model: missing {missing}, unexpected "
                               f"{unexpected}")
        return cls(name, config, model, tokenizer)

    @classmethod
    def random_init(cls, name: str, config: ModelConfig, tokenizer: ProbeTokenizer, seed: int) -> TorchBackend:
        """The trainer's initialisation of the same shape: the curve's point before any token."""
        torch.manual_seed(seed)
        return cls(name, config, _model(config), tokenizer)

    @torch.no_grad()
    def loglikelihoods(self, context: str, continuations: list[str]) -> list[float]:
        pairs = [self.tokenizer.split(context, c) for c in continuations]
        # The last block_size + 1 tokens of each: the context is cut from the left, never the candidate.
        seqs = [(ctx + cont)[-(self.block + 1):] for ctx, cont in pairs]
        width = max(len(s) for s in seqs) - 1
        inputs = torch.full((len(seqs), width), self.tokenizer.eos, dtype=torch.long)
        targets = torch.full((len(seqs), width), -100, dtype=torch.long)  # cross_entropy's ignore_index
        for row, seq in enumerate(seqs):
            inputs[row, :len(seq) - 1] = torch.tensor(seq[:-1])
            targets[row, :len(seq) - 1] = torch.tensor(seq[1:])
        logits, _ = self.model(inputs, targets)  # given targets, the model returns every position's logits
        logprobs = F.log_softmax(logits.float(), dim=-1)
        out = []
        for row, (seq, (_, cont)) in enumerate(zip(seqs, pairs)):
            positions = torch.arange(len(seq) - 1 - len(cont), len(seq) - 1)
            out.append(float(logprobs[row, positions, torch.tensor(seq[-len(cont):])].sum()))
        return out

    @torch.no_grad()
    def greedy(self, context: str, max_tokens: int) -> str:
        ids, _ = self.tokenizer.split(context, "")
        new: list[int] = []
        for _ in range(max_tokens):
            logits, _ = self.model(torch.tensor([(ids + new)[-self.block:]]))
            token = int(logits[0, -1].argmax())
            if token == self.tokenizer.eos:
                break
            new.append(token)
        return self.tokenizer.decode(new)
