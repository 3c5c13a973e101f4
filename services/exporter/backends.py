"""The chat demo's server and llama.cpp backends (§7.2); ``direct.py`` has the PyTorch one.

Each has ``stream(query, sampling)``. ``ollama`` asks a server (it applies the Modelfile's template
and system prompt itself); ``llamacpp`` and ``direct`` render the same template locally, so all
three see the same prompt and the same sampling settings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from services.exporter import llama
from services.exporter.serve import connect
from services.exporter.settings import Sampling, render_prompt
from shared.errors import InvalidInput

log = logging.getLogger(__name__)


def fit_context(ids: list[int], n_ctx: int, max_tokens: int) -> tuple[list[int], int]:
    """Keep the prompt's end and room to answer: a small model's context cannot hold everything."""
    reserve = min(max_tokens, n_ctx // 2)
    if len(ids) > n_ctx - reserve:
        log.warning("prompt of %d tokens cut to its last %d to fit the %d-token context",
                    len(ids), n_ctx - reserve, n_ctx)
        ids = ids[len(ids) - (n_ctx - reserve):]
    return ids, min(max_tokens, n_ctx - len(ids))


class OllamaBackend:
    name = "ollama"

    def __init__(self, host: str, model: str, keep_alive: str = "30m"):
        self.client, _ = connect(host)
        self.keep_alive = keep_alive
        self.model = model if ":" in model else f"{model}:latest"
        tags = sorted(m.model for m in self.client.list().models)
        if self.model not in tags:
            raise InvalidInput(
                f"model {self.model} is not in the Ollama server at {host} (it has: {', '.join(tags) or 'none'}); "
                f"create it with `als-lm export ollama --host {host}`"
            )

    def stream(self, query: str, s: Sampling) -> Iterator[str]:
        options = {"temperature": s.temperature, "top_k": s.top_k, "top_p": s.top_p,
                   "num_predict": s.max_tokens, "repeat_penalty": s.repeat_penalty}
        for chunk in self.client.generate(model=self.model, prompt=query, stream=True, options=options,
                                          keep_alive=self.keep_alive):
            if chunk.response:
                yield chunk.response


class LlamaCppBackend:
    name = "llamacpp"

    def __init__(self, gguf: Path, system: str, stop: list[str], threads: int):
        self.llm = llama.load(gguf, n_ctx=0, threads=threads)
        # llama.cpp pads its context up to 256; positions past the learned table are not usable.
        self.n_ctx = int(self.llm.metadata["gpt2.context_length"])
        self.model, self.system, self.stop = str(gguf), system, stop

    def stream(self, query: str, s: Sampling) -> Iterator[str]:
        prompt = self.llm.tokenize(render_prompt(self.system, query).encode(), add_bos=False)
        prompt, room = fit_context(prompt, self.n_ctx, s.max_tokens)
        for chunk in self.llm.create_completion(
            prompt, max_tokens=room, temperature=s.temperature, top_k=s.top_k, top_p=s.top_p,
            repeat_penalty=s.repeat_penalty, stop=self.stop, stream=True,
        ):
            if text := chunk["choices"][0]["text"]:
                yield text
