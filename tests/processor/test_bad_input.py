"""Bad raw input is quarantined with a reason or stops the stage with a clear error; never a
half-published run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.processor.process import process_corpus
from services.processor.settings import ProcessConfig
from shared import runs
from tests.processor.raw import publish_scrape, raw_line

CFG = ProcessConfig(min_tokens=5)


def excluded(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "excluded.jsonl").read_text().splitlines()]


def test_bad_lines_are_quarantined_with_reasons_and_good_ones_processed(tmp_path):
    good = raw_line("good-1", "Tofersen lowers SOD1 protein in cerebrospinal fluid of treated patients.")
    missing = json.dumps({"id": "no-text", "source": "pmc", "url": "u", "title": "t",
                          "date_accessed": "2026-01-01", "license": "CC-BY-4.0"}).encode()
    raw = tmp_path / "part-00000.jsonl"
    raw.write_bytes(b"\n".join([good, b'{"id": "x", "text": "caf\xe9"}', missing, b"{not json", b""]) + b"\n")

    summary = process_corpus([raw], tmp_path / "out", CFG, 1, ["SOD1"])

    assert summary["total"]["documents"] == 1
    reasons = {r["reason"]: r for r in excluded(tmp_path / "out") if r["step"] == "read"}
    assert set(reasons) == {"not_utf8", "invalid_document", "invalid_json"}
    assert "text: Field required" in reasons["invalid_document"]["detail"]
    assert reasons["not_utf8"]["where"] == "part-00000.jsonl:2"


@pytest.mark.parametrize("content", [b"", b"\n\n", b'{"id": 1}\n'], ids=["empty", "blank-lines", "no-valid-doc"])
def test_no_valid_documents_is_a_clear_error(tmp_path, content):
    raw = tmp_path / "part-00000.jsonl"
    raw.write_bytes(content)
    with pytest.raises(ValueError, match="no valid documents in 1 raw file"):
        process_corpus([raw], tmp_path / "out", CFG, 1, ["SOD1"])


def test_no_raw_files_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no raw document files"):
        process_corpus([], tmp_path / "out", CFG, 1, ["SOD1"])


def _als_lm(args: list[str], root: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALS_STORE__BACKEND": "local", "ALS_STORE__ROOT": str(root),
           "ALS_WORK_DIR": str(tmp_path / "work")}
    return subprocess.run([sys.executable, "-c", "from als_lm.cli import main; main()", *args],
                          capture_output=True, text=True, check=False, env=env, cwd=tmp_path, timeout=120)


def test_process_without_scrape_runs_fails_clearly(local_store, tmp_path):
    result = _als_lm(["process"], local_store.root, tmp_path)
    assert result.returncode == 1
    assert "error: no published scrape-* run" in result.stderr and "Traceback" not in result.stderr


def test_failed_process_publishes_nothing(local_store, tmp_path):
    publish_scrape(local_store, tmp_path, [b"\xff\xfe not utf-8", b'{"id": "only-id"}'])
    result = _als_lm(["process"], local_store.root, tmp_path)
    assert result.returncode == 1
    assert "no valid documents" in result.stderr and "not_utf8 1" in result.stderr
    assert runs.runs(local_store, "process") == []
    assert list(local_store.list("process/")) == []  # outputs of the failed run were discarded


def test_tokenize_without_process_run_fails_clearly(local_store, tmp_path):
    result = _als_lm(["tokenize"], local_store.root, tmp_path)
    assert result.returncode == 1
    assert "no published run of stage 'process'" in result.stderr
