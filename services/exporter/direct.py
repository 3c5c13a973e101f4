"""The chat demo's ``direct`` backend: the exported weights in PyTorch, sampled like llama.cpp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from services.exporter.backends import fit_context
from services.exporter.settings import Sampling, render_prompt
from shared.errors import InvalidInput

REPEAT_WINDOW = 64  # llama-cpp-python's last_n_tokens_size, so `direct` penalizes like `llamacpp`


def sample(logits: torch.Tensor, history: list[int], s: Sampling, generator: torch.Generator) -> int:
    """llama.cpp's chain: repeat penalty -> top-k -> top-p -> temperature -> draw."""
    logits = logits.clone()
    if s.repeat_penalty != 1.0 and history:
        seen = torch.tensor(sorted(set(history[-REPEAT_WINDOW:])))
        vals = logits[seen]
        logits[seen] = torch.where(vals > 0, vals / s.repeat_penalty, vals * s.repeat_penalty)
    if s.temperature == 0:
        return int(logits.argmax())
    if 0 < s.top_k < logits.numel():
        kth = torch.topk(logits, s.top_k).values[-1]
        logits[logits < kth] = float("-inf")
    if s.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= s.top_p  # keep the token that crosses top_p
        logits[order[drop]] = float("-inf")
    probs = torch.softmax(logits / s.temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


class StopFilter:
    """Streams text but holds back what might be the start of a stop string, and ends at one."""

    def __init__(self, stop: list[str]):
        self.stop, self.pending, self.done = stop, "", False

    def feed(self, text: str) -> str:
        self.pending += text
        for s in self.stop:
            if (at := self.pending.find(s)) >= 0:
                out, self.pending, self.done = self.pending[:at], "", True
                return out
        hold = max((n for s in self.stop for n in range(len(s), 0, -1) if self.pending.endswith(s[:n])), default=0)
        out, self.pending = self.pending[: len(self.pending) - hold], self.pending[len(self.pending) - hold:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.done else self.pending), ""
        return out


class DirectBackend:
    """transformers' GPT2LMHeadModel over the HF export, with a KV cache."""

    name = "direct"

    def __init__(self, hf_dir: Path, system: str, stop: list[str], seed: int):
        from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()

        hf_dir = Path(hf_dir)
        if not (hf_dir / "config.json").is_file():
            raise InvalidInput(f"{hf_dir} is not a Hugging Face model directory (no config.json); run `als-lm export run`")
        self.lm = GPT2LMHeadModel.from_pretrained(hf_dir).eval()
        self.tok = PreTrainedTokenizerFast.from_pretrained(hf_dir)
        self.model = str(hf_dir)
        self.system, self.stop = system, stop
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def stream(self, query: str, s: Sampling) -> Iterator[str]:
        ids = self.tok.encode(render_prompt(self.system, query), add_special_tokens=False, verbose=False)
        ids, room = fit_context(ids, self.lm.config.n_positions, s.max_tokens)
        out = self.lm(torch.tensor([ids]), use_cache=True)
        # The penalty sees the generated tokens only, as llama-cpp-python's sampler does (it accepts each
        # sampled token, never the prompt's); penalising the prompt made the two disagree from the first token.
        past, history, new, shown = out.past_key_values, [], [], ""
        stops = StopFilter(self.stop)
        for _ in range(room):
            token = sample(out.logits[0, -1], history, s, self.generator)
            if token == self.tok.eos_token_id:
                break
            history.append(token)
            new.append(token)
            text = self.tok.decode(new)
            if not text.endswith("\ufffd"):  # else half of a multi-byte character: wait for the rest
                if piece := stops.feed(text[len(shown):]):
                    yield piece
                shown = text
                if stops.done:
                    return
            out = self.lm(torch.tensor([[token]]), past_key_values=past, use_cache=True)
            past = out.past_key_values
        if rest := stops.flush():
            yield rest
