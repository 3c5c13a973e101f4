"""How the ``serve`` stage (services/exporter/stages/serve.py) creates ``als-lm:<quant>`` in an Ollama
server and verifies it (§6.4), and the report it writes.

Only the HTTP API is used (blob upload, then create from the blob's digest), so the server may run
in another container. Verification loads each tag, asks the seed's questions and records time to
first token, generation speed and the runner's resident memory.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import ollama
import psutil

from services.exporter.modelfile import parameters
from services.exporter.settings import TEMPLATE, ExportConfig
from shared.schemas.export import PromptCheck, ServeReport, TagCheck
from shared.servers import ServerError

log = logging.getLogger(__name__)


def connect(host: str, timeout: float = 300.0) -> tuple[ollama.Client, str]:
    """A client for ``host`` and the server's version; a clear error when nobody answers there."""
    try:
        version = httpx.get(f"{host.rstrip('/')}/api/version", timeout=5).json()["version"]
    except (httpx.HTTPError, ValueError, KeyError) as err:
        raise ServerError(
            f"cannot reach Ollama at {host} ({type(err).__name__}). Start it with `ollama serve` "
            "(`make setup` builds it at ~/.cache/als-lm/bin/ollama) or `docker compose up -d ollama`, "
            "or point --host / ALS_OLLAMA_HOST at a running server"
        ) from None
    return ollama.Client(host=host, timeout=timeout), version


def tag_names(cfg: ExportConfig) -> dict[str, str]:
    """tag -> quant: one tag per quantization, and ``latest`` for the default one."""
    tags = {f"{cfg.model_name}:{q.lower()}": q for q in cfg.quants}
    tags[f"{cfg.model_name}:latest"] = cfg.default_quant
    return tags


def existing_tags(client: ollama.Client) -> set[str]:
    return {m.model for m in client.list().models}


def create_tags(client: ollama.Client, files: dict[str, Path], cfg: ExportConfig, block_size: int,
                version: str) -> dict[str, str]:
    """Upload each GGUF once and create its tags; returns quant -> blob digest."""
    tags = tag_names(cfg)
    digests = {q: client.create_blob(path) for q, path in files.items()}
    for tag, quant in tags.items():
        try:
            client.create(model=tag, files={files[quant].name: digests[quant]}, template=TEMPLATE,
                          system=cfg.system, parameters=parameters(cfg, block_size))
        except ollama.ResponseError as err:
            raise ServerError(f"Ollama {version} refused to create {tag} from {files[quant].name}: {err.error}") from None
        log.info("serve: created %s (%s)", tag, quant)
    return digests


def runner_rss(host: str, digest: str) -> int | None:
    """Resident memory of the runner serving ``digest``; None when the server is not on this machine."""
    if urlparse(host).hostname not in ("127.0.0.1", "localhost"):
        return None
    blob = digest.replace(":", "-")
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if "runner" in cmd and blob in cmd:
            return proc.info["memory_info"].rss
    return None


def generate(client: ollama.Client, tag: str, prompt: str, n_tokens: int) -> PromptCheck:
    start = time.perf_counter()
    first, parts, final = None, [], None
    for chunk in client.generate(model=tag, prompt=prompt, stream=True, options={"num_predict": n_tokens}):
        if chunk.response and first is None:
            first = time.perf_counter() - start
        parts.append(chunk.response)
        final = chunk
    eval_s = (final.eval_duration or 0) / 1e9
    return PromptCheck(prompt=prompt, response="".join(parts), ttft_s=first if first is not None else float("nan"),
                       tokens=final.eval_count or 0,
                       tokens_per_s=(final.eval_count or 0) / eval_s if eval_s else 0.0)


def verify_tag(client: ollama.Client, host: str, tag: str, quant: str, digest: str, prompts: list[str],
               n_tokens: int) -> TagCheck:
    start = time.perf_counter()
    client.generate(model=tag, prompt="", keep_alive="5m")  # an empty prompt only loads the model
    load_s = time.perf_counter() - start
    checks = [generate(client, tag, p, n_tokens) for p in prompts]
    silent = [c.prompt for c in checks if c.tokens == 0]
    if silent:
        raise ServerError(f"{tag} loaded but generated nothing for {silent}")
    loaded = next((m for m in client.ps().models if m.model == tag), None)
    rss = runner_rss(host, digest)
    client.generate(model=tag, prompt="", keep_alive=0)  # unload, so the next tag's runner is measured alone
    return TagCheck(tag=tag, quant=quant, load_s=load_s, prompts=checks, runner_rss_bytes=rss,
                    server_reported_bytes=loaded.size if loaded else 0)


def serve_markdown(report: ServeReport) -> str:
    lines = [
        "# Serving report", "",
        f"Ollama {report.server_version} at {report.host}, model from `{report.export_run}`.", "",
        "| Tag | Load (s) | First token (ms) | Tokens/s | Runner RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in report.tags:
        ttft = min(p.ttft_s for p in t.prompts) * 1000
        tps = sum(p.tokens_per_s for p in t.prompts) / len(t.prompts)
        rss = f"{t.runner_rss_bytes / 2**20:.0f}" if t.runner_rss_bytes else "n/a (remote)"
        lines.append(f"| {t.tag} | {t.load_s:.2f} | {ttft:.0f} | {tps:.1f} | {rss} |")
    lines += ["", "Answers (first prompt per tag):", ""]
    for t in report.tags:
        p = t.prompts[0]
        lines.append(f"- `{t.tag}` — {p.prompt!r} → {json.dumps(p.response[:200])}")
    return "\n".join(lines) + "\n"
