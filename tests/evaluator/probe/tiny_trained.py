"""A tiny GPT trained a few hundred steps on the bundled sample, exported the way the export stage exports it
(f32 and f16 GGUF, Hugging Face directory), and cloze items cut from its training text by one general rule."""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from services.evaluator.probe.backends.llama import split
from tests.exporter.conftest import sample_texts, train_tokenizer

STEPS = 300
SENTENCE = re.compile(r"(?<=[.!?])\s+")
WORD = re.compile(r"^[A-Za-z][A-Za-z-]{2,}$")


@dataclass(eq=False)
class Trained:
    model: torch.nn.Module
    tokenizer: Tokenizer
    f32: Path
    f16: Path
    hf: Path

    def tokens(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def logits(self, ids: list[int]) -> torch.Tensor:
        x = torch.tensor([ids])
        with torch.no_grad():
            logits, _ = self.model(x, x)  # with targets the model returns every position's logits
        return logits[0].double()

    @functools.cache  # noqa: B019 (one Trained per session: the cache lives as long as the model anyway)
    def reference(self, context: str, continuation: str) -> tuple[float, int, float]:
        """The in-process log-likelihood (the trainer's GPT on the same token split as the backends), the
        continuation's length in tokens and the largest |logit| met on the way."""
        prefix, cont = split(self.tokens, context, continuation)
        logits = self.logits(prefix + cont)
        logp = torch.log_softmax(logits, dim=-1)
        return (sum(float(logp[len(prefix) + i - 1, t]) for i, t in enumerate(cont)), len(cont),
                float(logits.abs().max()))

    def loglikelihoods(self, context: str, continuations: list[str]) -> list[float]:
        return [self.reference(context, c)[0] for c in continuations]

    def greedy(self, context: str, max_tokens: int) -> str:
        ids = self.tokens(context)
        start = len(ids)
        for _ in range(max_tokens):
            token = int(self.logits(ids)[-1].argmax())
            if token == self.tokenizer.token_to_id("<|eos|>"):
                break
            ids.append(token)
        return self.tokenizer.decode(ids[start:])


def train(texts: list[str], tokenizer: Tokenizer, steps: int = STEPS) -> torch.nn.Module:
    from services.trainer.model import GPT, GPTConfig

    torch.manual_seed(0)
    eos = tokenizer.token_to_id("<|eos|>")
    data = torch.tensor([t for text in texts for t in tokenizer.encode(text).ids + [eos]])
    cfg = GPTConfig(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=tokenizer.get_vocab_size(),
                    dropout=0.0)
    model = GPT(cfg)
    fit(model, data, steps)
    return model.eval()


def fit(model: torch.nn.Module, tokens: torch.Tensor, steps: int, keep: tuple[int, ...] = ()) -> dict[int, dict]:
    """A plain AdamW loop (lr 3e-3) on 16 random windows of ``tokens`` a step, drawn from torch's global
    generator; the model's state at each step in ``keep``."""
    block = model.config.block_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    kept = {}
    for step in range(1, steps + 1):
        starts = torch.randint(0, len(tokens) - block - 1, (16,))
        x = torch.stack([tokens[i:i + block] for i in starts])
        y = torch.stack([tokens[i + 1:i + 1 + block] for i in starts])
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step in keep:
            kept[step] = {k: v.clone() for k, v in model.state_dict().items()}
    return kept


def export(model: torch.nn.Module, tokenizer: Tokenizer, out: Path) -> tuple[Path, Path, Path]:
    """f32 and f16 GGUFs and the HF directory, written by the exporter's own functions from a saved model.pt."""
    from services.exporter.checkpoint import load_checkpoint, read_tokenizer
    from services.exporter.gguf_export import write_gguf
    from services.exporter.hf import export_hf

    out.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.config.to_dict(), "model": model.state_dict()}, out / "model.pt")
    tokenizer.save(str(out / "tokenizer.json"))
    cfg, sd = load_checkpoint(out / "model.pt")
    tok = read_tokenizer(out / "tokenizer.json", cfg)
    f32 = write_gguf(cfg, sd, tok, out / "tiny-f32.gguf", "f32", "tiny")
    f16 = write_gguf(cfg, sd, tok, out / "tiny-f16.gguf", "f16", "tiny")
    return f32, f16, export_hf(cfg, sd, tok.special, out / "tokenizer.json", out / "hf")


@functools.cache
def trained(root: Path) -> Trained:
    """Trained once per test session (``root`` is a session temporary directory). On one thread: the matrices
    are too small to share, and on a busy machine two threads mostly wait for each other."""
    texts = sample_texts()
    tokenizer = train_tokenizer(texts)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = train(texts, tokenizer)
    finally:
        torch.set_num_threads(threads)
    return Trained(model, tokenizer, *export(model, tokenizer, root))


def cloze_items(n: int, k: int = 9, seed: int = 0) -> list[dict]:
    """Memorisation items from the training text: the first six words of a sentence, its seventh word and ``k``
    other words of the corpus as distractors (candidates without the delimiter, as the probe stores them)."""
    texts = sample_texts()
    vocabulary = sorted({w for text in texts for w in text.split() if WORD.match(w)})
    rng = random.Random(seed)
    items = []
    for sentence in (s for text in texts for s in SENTENCE.split(text)):
        words = sentence.split()
        if len(words) < 8 or not WORD.match(words[6]):
            continue
        distractors = rng.sample([w for w in vocabulary if w.lower() != words[6].lower()], k)
        candidates = [words[6], *distractors]
        rng.shuffle(candidates)
        items.append({"id": f"tiny.{len(items)}", "stem": " ".join(words[:6]), "candidates": candidates,
                      "answer": candidates.index(words[6])})
        if len(items) == n:
            break
    return items


def ranks(loglikelihoods: list[float], answer: int) -> int:
    """1 + the candidates at least as likely as the true one (ties count against)."""
    return 1 + sum(ll >= loglikelihoods[answer] for i, ll in enumerate(loglikelihoods) if i != answer)


def order(values: list[float]) -> list[int]:
    return list(np.argsort(-np.asarray(values), kind="stable"))
