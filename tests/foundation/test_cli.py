"""The one command line: help, settings with secrets masked, doctor, artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from als_lm.cli import COMMANDS, main
from shared.errors import InvalidInput

ALS = [sys.executable, "-m", "als_lm"]


def run(args, tmp_path, env=None, check=True):
    full_env = {**os.environ, "ALS_STORE__ROOT": str(tmp_path / "store"), "ALS_WORK_DIR": str(tmp_path / "work"),
                **(env or {})}
    proc = subprocess.run([*ALS, *args], capture_output=True, text=True, env=full_env, cwd=tmp_path, check=False)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_help_lists_every_stage(tmp_path):
    out = run(["--help"], tmp_path).stdout
    for stage in ["doctor", "config", "artifacts", "scrape", "process", "tokenize", "train", "export", "chat",
                  "rag", "eval", "report", "ui", "demo"]:
        assert f"  {stage} " in out


def test_config_masks_secrets_and_reads_env(tmp_path):
    out = run(["config", "--service", "common"], tmp_path,
              env={"ALS_STORE__SECRET_KEY": "super-secret", "ALS_SEED": "7"}).stdout
    data = json.loads(out)["common"]
    assert data["seed"] == 7
    assert data["store"]["secret_key"] == "**********"
    assert "super-secret" not in out


def test_invalid_setting_names_the_field(tmp_path):
    proc = run(["config"], tmp_path, env={"ALS_SEED": "not-a-number"}, check=False)
    assert proc.returncode != 0
    assert "seed" in proc.stderr


def doctor_rows(proc) -> dict[str, str]:
    """check name -> status of each row of the doctor's table."""
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 3 and cells[1] in ("OK", "MISSING", "ABSENT"):
            rows[cells[0]] = cells[1]
    return rows


def test_doctor_reports_each_check_and_fails_on_a_missing_requirement(tmp_path):
    required = ["python", "torch", "deepspeed", "tokenizers", "scrapy", "llama-cpp-python", "chromadb", "gradio",
                "minio binary", "ollama binary", "free disk", "store"]
    wide = {"COLUMNS": "200"}
    healthy = run(["doctor"], tmp_path, env=wide, check=False)
    rows = doctor_rows(healthy)
    assert healthy.returncode == 0 and rows == {**dict.fromkeys(required, "OK"), "cuda": rows["cuda"]}, healthy.stdout
    import torch

    # optional: never fails the doctor, but says what this machine has
    assert rows["cuda"] == ("OK" if torch.cuda.is_available() else "ABSENT")
    missing = run(["doctor"], tmp_path, env={**wide, "ALS_OLLAMA_BIN": str(tmp_path / "nowhere"),
                                             "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}, check=False)
    assert missing.returncode == 1
    assert doctor_rows(missing) == {**rows, "ollama binary": "MISSING"}, missing.stdout


def test_artifacts_put_ls_show_get_verify(tmp_path):
    src = tmp_path / "hello.txt"
    src.write_text("hello artifacts\n")
    assert "published manual-input/" in run(["artifacts", "put", "manual-input", str(src)], tmp_path).stdout
    assert "manual-input" in run(["artifacts", "ls"], tmp_path).stdout
    manifest = json.loads(run(["artifacts", "show", "manual-input"], tmp_path).stdout)
    assert manifest["outputs"][0]["size"] == len("hello artifacts\n")
    run(["artifacts", "get", "manual-input", "hello.txt", "-o", str(tmp_path / "got.txt")], tmp_path)
    assert (tmp_path / "got.txt").read_text() == "hello artifacts\n"
    assert "1 intact" in run(["artifacts", "verify"], tmp_path).stdout
    key = manifest["outputs"][0]["key"]
    Path(tmp_path / "store" / key).write_text("tampered")
    proc = run(["artifacts", "verify"], tmp_path, check=False)
    assert proc.returncode == 1 and "MISMATCH" in proc.stdout


def test_missing_run_is_one_clear_line(tmp_path):
    proc = run(["artifacts", "show", "nothing-here"], tmp_path, check=False)
    assert proc.returncode == 1
    assert "no published run of stage 'nothing-here'" in proc.stderr
    assert "Traceback" not in proc.stderr


def _publish(store, stage, inputs, *names):
    from shared import runs

    def body(writer, scratch):
        for name in names:
            writer.put_bytes(name, f"{stage}:{name}".encode())

    manifest, _ = runs.run_stage(store, stage, {}, inputs, body, work_dir=store.root.parent / "work")
    return manifest


def test_trace_walks_a_report_back_to_the_scrape_run(tmp_path):
    from shared.manifest import InputRef
    from shared.runs import inputs_from
    from shared.store import LocalStore

    store = LocalStore(tmp_path / "store")
    bundled = InputRef(key="bundled/questions.json", sha256="0" * 64, run="bundled")
    scrape = _publish(store, "scrape-sample", [], "docs/part-00000.jsonl", "rejected.jsonl")
    process = _publish(store, "process", inputs_from(scrape), "train.jsonl", "val.jsonl", "corpus.txt")
    index = _publish(store, "rag-index", inputs_from(process, ["train.jsonl", "val.jsonl"]), "chunks.jsonl")
    asked = _publish(store, "eval-rag", [bundled, *inputs_from(index)], "responses.jsonl")
    scored = _publish(store, "score-rag", [bundled, *inputs_from(asked), *inputs_from(process, ["corpus.txt"])],
                      "scores.json")
    report = _publish(store, "report", [bundled, *inputs_from(scored, ["scores.json"]), scored.input("responses.jsonl"),
                                        scored.input("corpus.txt")], "report.md")

    out = run(["artifacts", "trace", report.run], tmp_path).stdout
    lines = out.splitlines()
    assert report.run in lines[0]
    for upstream in (scored, asked, index, process, scrape):
        assert sum(upstream.run in line for line in lines) >= 1, f"{upstream.run} missing from the trace:\n{out}"
    assert "reads docs/part-00000.jsonl, rejected.jsonl" in out
    assert "bundled: questions.json" in out
    assert "(expanded above)" in out, "process is read twice (scores and corpus) but expanded once"
    assert sum(process.run in line and "expanded above" not in line for line in lines) == 1
    assert lines[-1] == f"5 upstream run(s) in the store; scrape run(s): {scrape.run}"


def test_trace_names_a_run_missing_from_the_store(tmp_path):
    from shared.runs import inputs_from
    from shared.store import LocalStore

    store = LocalStore(tmp_path / "store")
    scrape = _publish(store, "scrape-sample", [], "docs/part-00000.jsonl")
    process = _publish(store, "process", inputs_from(scrape), "corpus.txt")
    (tmp_path / "store" / scrape.run / "manifest.json").unlink()
    out = run(["artifacts", "trace", process.run], tmp_path).stdout
    assert f"{scrape.run} not in the store, reads docs/part-00000.jsonl" in out
    assert out.splitlines()[-1] == "0 upstream run(s) in the store; scrape run(s): none reached"


@click.command()
@click.argument("kind")
def _fail(kind):
    """Fails the way KIND says: an expected failure or a bug."""
    if kind == "expected":
        raise InvalidInput("questions.json: item 3 has no key fact")
    raise ValueError("a bug deep in the code")


def test_expected_failures_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    monkeypatch.setitem(COMMANDS, "fail", (f"{__name__}:_fail", "test command"))
    monkeypatch.setattr(sys, "argv", ["als-lm", "fail", "expected"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == "error: questions.json: item 3 has no key fact"
    monkeypatch.setattr(sys, "argv", ["als-lm", "fail", "bug"])
    with pytest.raises(ValueError, match="a bug deep in the code"):
        main()
