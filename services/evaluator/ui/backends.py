"""Where the pages' answers come from: the from-scratch model and the RAG baseline, both through Ollama.

Every failure of a backend (server down, model missing, no RAG index) becomes ``BackendDown`` with a
sentence a user can act on; the page shows it and keeps working, and the next question tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import ollama

from services.evaluator import runner
from services.evaluator.rag import pipeline
from services.evaluator.rag.pipeline import Rag
from services.evaluator.ui.settings import UISettings
from shared.runs import IntegrityError, RunNotFound
from shared.schemas.eval import RetrievedChunk
from shared.servers import ServerError
from shared.store import ArtifactStore, StoreError

SCRATCH, RAG = "scratch", "rag"


class BackendDown(RuntimeError):
    """A backend cannot answer now; the message says which and what to do."""


@dataclass(frozen=True)
class Generation:
    temperature: float
    top_k: int
    top_p: float
    max_tokens: int
    seed: int | None = None

    def options(self) -> dict:
        opts = {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "num_predict": self.max_tokens}
        return opts if self.seed is None else {**opts, "seed": self.seed}


class Backends:
    """One Ollama client for every request; the RAG index and embedder opened once, on first use."""

    def __init__(self, settings: UISettings, store: ArtifactStore):
        self.settings, self.store = settings, store
        self.host = settings.ollama_host
        self.client = ollama.Client(host=self.host, timeout=settings.ui.request_timeout_s)
        self._rag: Rag | None = None
        self._scratch_model: str | None = None
        self._lock = threading.Lock()

    def scratch_model(self) -> str:
        """The tag ``als-lm eval run --system scratch`` asks: ALS_EVAL__SCRATCH_MODEL or the latest serve run's."""
        with self._lock:
            if self._scratch_model is None:
                try:
                    self._scratch_model, _ = runner.scratch_model(self.store, self.settings)
                except (RunNotFound, IntegrityError, StoreError, ValueError) as err:
                    raise BackendDown(f"The from-scratch model is unavailable: {err}") from None
            return self._scratch_model

    def rag(self) -> Rag:
        with self._lock:
            if self._rag is None:
                try:
                    self._rag = pipeline.open_rag(self.store, self.settings)
                except (RunNotFound, IntegrityError, StoreError, ServerError, ValueError) as err:
                    raise BackendDown(f"The RAG baseline is unavailable: {err}") from None
            return self._rag

    def retrieve(self, question: str) -> list[RetrievedChunk]:
        rag = self.rag()
        try:
            return rag.retrieve(question)
        except Exception as err:  # noqa: BLE001 - chromadb raises bare errors when its server goes away
            with self._lock:
                self._rag = None  # reopen on the next question
            raise BackendDown(f"RAG retrieval failed ({type(err).__name__}: {err}); is Chroma running?") from None

    def stream(self, system: str, question: str, gen: Generation,
               chunks: list[RetrievedChunk] | None = None) -> Iterator[str]:
        """The answer of ``system`` in pieces; RAG answers from ``chunks`` (see ``retrieve``)."""
        if system == SCRATCH:
            # The served model's Modelfile applies its template and system prompt itself.
            return self._generate(self.scratch_model(), question, gen)
        if system == RAG:
            return self._generate(self.rag().model, pipeline.prompt(question, chunks or []), gen)
        raise ValueError(f"unknown backend {system!r}; choose {SCRATCH!r} or {RAG!r}")

    def _generate(self, model: str, prompt: str, gen: Generation) -> Iterator[str]:
        try:
            for chunk in self.client.generate(model=model, prompt=prompt, stream=True, options=gen.options(),
                                              keep_alive="10m"):
                if chunk.response:
                    yield chunk.response
        except ollama.ResponseError as err:
            if err.status_code == 404:
                raise BackendDown(f"Ollama at {self.host} has no model {model!r}; create it (`als-lm export`) "
                                  "or set another model in the settings") from None
            raise BackendDown(f"Ollama could not answer with {model}: {err.error}") from None
        except (httpx.TransportError, ConnectionError) as err:
            raise BackendDown(f"Ollama at {self.host} is not answering ({type(err).__name__}); start it "
                              "(`ollama serve`) or set ALS_OLLAMA_HOST, then ask again") from None
