"""``als-lm chat``: the REPL driven through stdin/stdout, its backends, its logs and its errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from services.exporter.chat import open_backend
from services.exporter.direct import StopFilter, sample
from services.exporter.settings import ChatConfig, Sampling
from shared.servers import free_port


def chat(exported, tmp_path, args, stdin=None, env=None, timeout=180):
    tmp_path.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "ALS_STORE__ROOT": str(exported["store"].root), "ALS_WORK_DIR": str(tmp_path / "work"),
                "ALS_CHAT__LOGS_DIR": str(tmp_path / "logs"), "ALS_EXPORT__SAMPLING__MAX_TOKENS": "12",
                **(env or {})}
    return subprocess.run([sys.executable, "-m", "als_lm", "chat", *args], input=stdin, check=False, capture_output=True,
                          text=True, env=full_env, cwd=tmp_path, timeout=timeout)


def logs(tmp_path) -> list[dict]:
    return [json.loads(line) for p in sorted((tmp_path / "logs").glob("*.jsonl")) for line in p.read_text().splitlines()]


def test_repl_configures_answers_and_logs(exported, tmp_path):
    commands = ["/help", "/config", "/config temperature 0", "/config set top_k 5", "/config top_p 7",
                "/config backend nonsense", "/config colour blue", "What is ALS?", "/nope", "/quit"]
    script = "".join(f"{c}\n" for c in commands)
    proc = chat(exported, tmp_path, ["--backend", "llamacpp", "--quant", "Q8_0"], stdin=script)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "DISCLAIMER: This is a research project, not a medical" in out
    assert "/config <key> <value>" in out  # /help
    assert "repeat_penalty  1.1" in out and "backend         llamacpp" in out  # /config view
    assert "temperature = 0.0" in out and "top_k = 5" in out
    assert "error: top_p='7'" in out
    assert "unknown backend 'nonsense'" in out and "still using llamacpp" in out
    assert "unknown setting 'colour'" in out
    assert "unknown command /nope" in out
    [record] = logs(tmp_path)
    assert record["query"] == "What is ALS?" and record["backend"] == "llamacpp"
    assert record["config"]["temperature"] == 0.0 and record["config"]["top_k"] == 5
    assert record["response"] and record["response"] in out  # what was streamed is what was logged
    assert set(record) >= {"timestamp", "query", "response", "config", "backend"}


def test_direct_and_llamacpp_give_the_same_greedy_answer(exported, tmp_path):
    """Same weights, same prompt template, same sampling: greedy decoding must agree."""
    settings = exported["settings"].model_copy(update={"work_dir": tmp_path, "chat": ChatConfig(quant="f32")})
    greedy = Sampling(temperature=0, max_tokens=12)
    answers = {}
    for backend in ("direct", "llamacpp"):
        b = open_backend(backend, settings, None, None)
        answers[backend] = "".join(b.stream("What genes are associated with ALS?", greedy))
    assert answers["direct"] and answers["direct"] == answers["llamacpp"]


def test_unknown_backend_is_refused(exported, tmp_path):
    proc = chat(exported, tmp_path, ["--backend", "gpt4", "--prompt", "hi"])
    assert proc.returncode == 2 and "'gpt4' is not one of 'ollama', 'direct', 'llamacpp'" in proc.stderr


def test_missing_quant_lists_the_variants(exported, tmp_path):
    proc = chat(exported, tmp_path, ["--backend", "llamacpp", "--quant", "Q3_K_S", "--prompt", "hi"])
    assert proc.returncode == 1
    assert "has no GGUF variant Q3_K_S" in proc.stderr and "Q4_K_M, Q5_K_M, Q8_0, f16, f32" in proc.stderr


def test_corrupted_gguf_is_a_clear_error(exported, tmp_path):
    (tmp_path / "bad.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    proc = chat(exported, tmp_path, ["--backend", "llamacpp", "--gguf", str(tmp_path / "bad.gguf"), "--prompt", "hi"])
    assert proc.returncode == 1 and "llama.cpp cannot load" in proc.stderr and "Traceback" not in proc.stderr


def test_ollama_not_running_says_how_to_start_it(exported, tmp_path):
    proc = chat(exported, tmp_path, ["--host", f"http://127.0.0.1:{free_port()}", "--prompt", "hi"])
    assert proc.returncode == 1
    assert "cannot reach Ollama" in proc.stderr and "ollama serve" in proc.stderr


def test_stop_filter_holds_back_a_partial_stop_and_ends_at_it():
    f = StopFilter(["User:"])
    assert f.feed("ALS is a disease. Us") == "ALS is a disease. "
    assert f.feed("eful") == "Useful"
    assert f.feed(" yes\nUse") == " yes\n"
    assert f.feed("r: next") == "" and f.done


@pytest.mark.parametrize("settings", [Sampling(temperature=0), Sampling(top_k=1), Sampling(top_p=0.01)])
def test_sampling_reduces_to_argmax(settings):
    logits = torch.tensor([0.1, 2.0, 1.9, -1.0])
    assert sample(logits, [], settings, torch.Generator().manual_seed(0)) == 1


def test_repeat_penalty_demotes_seen_tokens():
    logits = torch.tensor([1.0, 1.05])
    assert sample(logits, [1], Sampling(temperature=0, repeat_penalty=1.1), torch.Generator()) == 0
