"""The project's tokenizer as the in-process backends use it: lm-eval's split of context and continuation.

``context`` and ``context + continuation`` are encoded whole and the continuation is the tokens after
the context's, as lm-evaluation-harness does, so the same item gives the same tokens to every backend.
Training shards end each document with ``<|eos|>``, so a stem is read as text after a document boundary.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer

from shared.errors import InvalidInput


class ProbeTokenizer:
    def __init__(self, path: Path):
        try:
            self.tokenizer = Tokenizer.from_file(str(path))
        except Exception as err:  # noqa: BLE001 - tokenizers raises a bare Exception on a bad file
            raise InvalidInput(f"tokenizer {path} cannot be read: {err}") from None
        self.eos = self.tokenizer.token_to_id("<|eos|>")
        if self.eos is None:
            raise InvalidInput(f"tokenizer {path} has no <|eos|> token")
        self.vocab_size = self.tokenizer.get_vocab_size()
        self._splits: dict[tuple[str, str], tuple[list[int], list[int]]] = {}  # every point scores the same items

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def split(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """The context's tokens after ``<|eos|>``, and the continuation's tokens."""
        key = (context, continuation)
        if key not in self._splits:
            context_ids = self.encode(context)
            whole = self.encode(context + continuation)
            self._splits[key] = ([self.eos, *context_ids], whole[len(context_ids):])
        context_ids, continuation_ids = self._splits[key]
        return list(context_ids), list(continuation_ids)

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)
