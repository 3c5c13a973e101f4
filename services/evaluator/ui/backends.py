"""Where the pages' answers come from: the from-scratch model and the RAG baseline, both through Ollama.

Every failure of a backend (server down, model missing, no RAG index) becomes ``BackendDown`` with a
sentence a user can act on; the page shows it and keeps working, and the next question tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import ollama

from services.evaluator import runner
from services.evaluator.rag import generate, pipeline
from services.evaluator.rag.pipeline import Rag
from services.evaluator.ui.settings import UISettings
from shared.runs import IntegrityError, RunNotFound
from shared.schemas.eval import RetrievedChunk
from shared.servers import ServerError
from shared.store import ArtifactStore, StoreError

SCRATCH, RAG = "scratch", "rag"


class BackendDown(RuntimeError):
    """A backend cannot answer now; the message says which and what to do."""


def sampling(temperature: float, top_k: int, top_p: float, max_tokens: int) -> dict:
    """Ollama options from the Chat page's generation settings."""
    return {"temperature": float(temperature), "top_k": int(top_k), "top_p": float(top_p),
            "num_predict": int(max_tokens)}


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

    def stream(self, system: str, question: str, options: dict,
               chunks: list[RetrievedChunk] | None = None) -> Iterator[str]:
        """The answer of ``system`` in pieces, with Ollama ``options``; RAG answers from ``chunks``."""
        if system == SCRATCH:
            # The served model's Modelfile applies its template and system prompt itself.
            return self._generate(self.scratch_model(), question, options)
        if system == RAG:
            return self._generate(self.rag().model, pipeline.prompt(question, chunks or []), options)
        raise ValueError(f"unknown backend {system!r}; choose {SCRATCH!r} or {RAG!r}")

    def eval_options(self, system: str) -> dict:
        """The options ``als-lm eval run`` generates with: greedy, the run's seed (RAG: its context size)."""
        if system == RAG:
            return self.rag().options
        return generate.options(self.settings.seed, self.settings.eval.max_tokens)

    def _generate(self, model: str, prompt: str, options: dict) -> Iterator[str]:
        try:
            for chunk in self.client.generate(model=model, prompt=prompt, stream=True, options=options,
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
