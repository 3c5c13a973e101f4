"""A ProbeBackend over any GGUF file through llama.cpp (llama-cpp-python): the from-scratch model's exported
GGUFs and the RAG generator (Gemma 3 270M) alike.

Context and continuation are split into tokens the way lm-evaluation-harness splits them (trailing whitespace of
the context moves to the continuation; context + continuation is tokenised whole and the continuation is what
follows the context's token count), so a ranking here is the ranking lm_eval computes on the same model.

Only the last position's logits are read (``logits_all`` stays off): with ``logits_all`` llama-cpp-python keeps a
row of logits per position of the context, a gigabyte for Gemma's 262k vocabulary and a RAG context of a thousand
tokens. The context is evaluated once per item and kept in the KV cache; each candidate is then decoded after it
in one batch that asks for the logits of its own positions only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import llama_cpp
import numpy as np
from llama_cpp import Llama

from shared.errors import InvalidInput


def split(tokenize: Callable[[str], list[int]], context: str, continuation: str) -> tuple[list[int], list[int]]:
    """The tokens the continuation is conditioned on and the continuation's own tokens (lm-eval's split)."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tokenize(context + continuation)
    n = len(tokenize(context))
    return whole[:n], whole[n:]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max()
    return z - np.log(np.exp(z).sum())


def load(path: Path, n_ctx: int, threads: int) -> Llama:
    """The GGUF at ``path``; a one-line error naming the file when llama.cpp cannot use it."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"GGUF file {path} does not exist")
    try:
        return Llama(model_path=str(path), n_ctx=n_ctx, n_batch=min(n_ctx, 512), n_threads=threads,
                     n_threads_batch=threads, verbose=False)
    except ValueError as err:
        raise InvalidInput(f"llama.cpp cannot load {path} (not a GGUF, or truncated?): {err}") from None


class LlamaBackend:
    """Log-likelihoods and greedy continuations of one GGUF model.

    ``as_trained``: the context is read as the in-process probe reads it (``backends/torch_model.py``), after
    ``<|eos|>`` as every training document follows the previous one's, and cut from the left to fit the trained
    context; otherwise a context that does not fit is refused (a RAG context is never cut silently)."""

    def __init__(self, name: str, llm: Llama, *, as_trained: bool = False):
        self.name = name
        self.llm = llm
        self.as_trained = as_trained
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        # Positions past the trained context have no position embedding in a GPT-2 (llama.cpp would read past
        # the table), and llama.cpp may pad the context beyond what llama-cpp-python holds tokens for.
        self.max_tokens = min(llm.n_ctx(), len(llm.input_ids), llama_cpp.llama_model_n_ctx_train(llm.model))
        self._prefix: list[int] = []
        self._prefix_logits = np.empty(0)

    @classmethod
    def from_gguf(cls, path: Path, *, threads: int, name: str | None = None, n_ctx: int = 2048,
                  as_trained: bool = False) -> LlamaBackend:
        return cls(name or Path(path).stem, load(path, n_ctx, threads), as_trained=as_trained)

    def tokenize(self, text: str) -> list[int]:
        # add_bos=True adds BOS only where the model's GGUF asks for it (Gemma does, the from-scratch model, whose
        # training documents are separated by <|eos|> alone, does not): each model sees its own convention.
        ids = self.llm.tokenize(text.encode(), add_bos=True, special=False)
        return [self.llm.token_eos(), *ids] if self.as_trained else ids

    def loglikelihoods(self, context: str, continuations: list[str]) -> list[float]:
        return [self._loglikelihood(*split(self.tokenize, context, c)) for c in continuations]

    def greedy(self, context: str, max_tokens: int) -> str:
        prefix = self.tokenize(context)
        out: list[int] = []
        while len(out) < max_tokens:
            # Each step extends the cached tokens by one (a cut window is evaluated again, as in process).
            token = int(np.argmax(self._condition(self._fit(prefix + out, 0))))
            if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                break
            out.append(token)
        return self.llm.detokenize(out, prev_tokens=prefix).decode("utf-8", errors="replace")

    def _fit(self, prefix: list[int], more: int) -> list[int]:
        """``prefix``, cut from the left (``as_trained``) so that it and ``more`` tokens fit the context."""
        return prefix[-max(1, self.max_tokens - more):] if self.as_trained else prefix

    def _loglikelihood(self, prefix: list[int], continuation: list[int]) -> float:
        if not continuation:
            raise InvalidInput("a probe continuation must add at least one token to its context")
        rows = [self._condition(self._fit(prefix, len(continuation) - 1)), *self._feed(continuation[:-1])]
        return sum(float(log_softmax(logits)[token]) for logits, token in zip(rows, continuation))

    def _condition(self, prefix: list[int]) -> np.ndarray:
        """The next-token logits after ``prefix``, with the KV cache holding exactly ``prefix``."""
        # With no context at all, condition on <|eos|>, the start of a document (lm-eval's convention).
        prefix = prefix or [self.llm.token_eos()]
        if len(prefix) > self.max_tokens:
            raise InvalidInput(f"a probe context of {len(prefix)} tokens does not fit {self.name}'s context of "
                               f"{self.max_tokens} tokens")
        if prefix != self._prefix:
            cached = self.llm.input_ids[: self.llm.n_tokens].tolist()
            keep = next((i for i, (a, b) in enumerate(zip(cached, prefix)) if a != b), min(len(cached), len(prefix)))
            self.llm.n_tokens = min(keep, len(prefix) - 1)  # at least one token is evaluated, for its logits
            self.llm.eval(prefix[self.llm.n_tokens:])
            self._prefix, self._prefix_logits = list(prefix), self._logits(-1)
        self.llm.n_tokens = len(prefix)
        return self._prefix_logits

    def _feed(self, tokens: list[int]) -> list[np.ndarray]:
        """Decode ``tokens`` after the cache's tokens in one batch; the next-token logits after each of them."""
        if not tokens:
            return []
        start = self.llm.n_tokens
        if start + len(tokens) > self.max_tokens:
            raise InvalidInput(f"a probe continuation runs past {self.name}'s context of {self.max_tokens} tokens")
        # llama-cpp-python's eval() asks for the last position's logits only, so the batch is built here.
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(self.llm.ctx), -1, start, -1)
        batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
        try:
            for i, token in enumerate(tokens):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, start + i, 1, True
                batch.seq_id[i][0] = 0
            batch.n_tokens = len(tokens)
            if llama_cpp.llama_decode(self.llm.ctx, batch) != 0:
                raise RuntimeError(f"llama.cpp could not decode {len(tokens)} tokens with {self.name}")
        finally:
            llama_cpp.llama_batch_free(batch)
        self.llm.input_ids[start:start + len(tokens)] = tokens
        self.llm.n_tokens = start + len(tokens)
        return [self._logits(i) for i in range(len(tokens))]

    def _logits(self, i: int) -> np.ndarray:
        """The logits of the last decode's ``i``-th output (-1: its last)."""
        row = llama_cpp.llama_get_logits_ith(self.llm.ctx, i)
        return np.ctypeslib.as_array(row, shape=(self.llm.n_vocab(),)).copy()
