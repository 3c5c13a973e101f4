"""The real Ollama server: models created through its API, verified (§6.4) and chatted with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import ollama
import pytest

from shared.schemas.export import ServeReport

pytestmark = pytest.mark.slow


def als(exported, tmp_path, *args, env=None):
    full_env = {**os.environ, "ALS_STORE__ROOT": str(exported["store"].root), "ALS_WORK_DIR": str(tmp_path / "work"),
                "ALS_SERVE__VERIFY_TOKENS": "8", "ALS_EXPORT__SAMPLING__MAX_TOKENS": "8",
                "ALS_CHAT__LOGS_DIR": str(tmp_path / "logs"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "als_lm", *args], check=False, capture_output=True, text=True,
                          env=full_env, cwd=tmp_path, timeout=400)


@pytest.fixture(scope="module")
def served(exported, ollama_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    proc = als(exported, tmp, "export", "ollama", "--host", ollama_server.base_url)
    assert proc.returncode == 0, proc.stderr + ollama_server.tail()
    return proc


def test_every_quant_becomes_a_tag_that_answers(exported, ollama_server, served):
    tags = {m.model for m in ollama.Client(host=ollama_server.base_url).list().models}
    assert {"als-lm:q8_0", "als-lm:q5_k_m", "als-lm:q4_k_m", "als-lm:latest"} <= tags
    assert "serve: published serve/" in served.stdout
    manifest = max(m for m in exported["store"].list("serve/") if m.endswith("manifest.json"))
    run = manifest.rsplit("/", 1)[0]
    report = ServeReport.model_validate_json(exported["store"].get_bytes(f"{run}/report.json"))
    assert [t.quant for t in report.tags] == ["Q8_0", "Q5_K_M", "Q4_K_M"]
    for tag in report.tags:
        assert [p.prompt for p in tag.prompts] == ["What is ALS?", "What genes are associated with ALS?"]
        for p in tag.prompts:
            assert p.response and p.tokens > 0 and p.tokens_per_s > 0 and 0 < p.ttft_s < 60
        assert tag.runner_rss_bytes and tag.runner_rss_bytes > 1_000_000  # the runner process was found


def test_latest_carries_the_modelfile(ollama_server, served):
    shown = ollama.Client(host=ollama_server.base_url).show("als-lm:latest")
    assert "User: {{ .Content }}" in shown.template and "not a medical resource" in shown.modelfile
    assert "repeat_penalty" in shown.parameters and "num_ctx" in shown.parameters


def test_second_run_against_the_same_server_is_skipped(exported, ollama_server, served, tmp_path):
    proc = als(exported, tmp_path, "export", "ollama", "--host", ollama_server.base_url)
    assert proc.returncode == 0 and "serve: skipped (unchanged)" in proc.stdout


def test_chat_through_ollama_streams_and_logs(exported, ollama_server, served, tmp_path):
    proc = als(exported, tmp_path, "chat", "--host", ollama_server.base_url, "--prompt", "What is ALS?")
    assert proc.returncode == 0, proc.stderr
    [line] = (tmp_path / "logs").glob("*.jsonl")
    record = json.loads(line.read_text())
    assert record["backend"] == "ollama" and record["response"] == proc.stdout.rstrip("\n")
    assert record["response"]


def test_chat_keeps_the_model_loaded_for_keep_alive(exported, ollama_server, served, tmp_path):
    """After an answer the runner stays loaded for chat.keep_alive, so the next question reuses the
    system prompt's KV cache instead of waiting for a load (docs/bench/exporter.md)."""
    client = ollama.Client(host=ollama_server.base_url)
    client.generate(model="als-lm:latest", prompt="", keep_alive=0)  # unloaded
    proc = als(exported, tmp_path, "chat", "--host", ollama_server.base_url, "--prompt", "What is ALS?",
               env={"ALS_CHAT__KEEP_ALIVE": "45m"})
    assert proc.returncode == 0, proc.stderr
    [loaded] = [m for m in client.ps().models if m.model == "als-lm:latest"]
    left = loaded.expires_at.timestamp() - time.time()
    assert 40 * 60 < left <= 45 * 60


def test_chat_with_a_tag_that_does_not_exist_lists_the_tags(exported, ollama_server, served, tmp_path):
    proc = als(exported, tmp_path, "chat", "--host", ollama_server.base_url, "--model", "als-lm:q3_k_s",
               "--prompt", "hi")
    assert proc.returncode == 1
    assert "als-lm:q3_k_s is not in the Ollama server" in proc.stderr and "als-lm:q5_k_m" in proc.stderr
