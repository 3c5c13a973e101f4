"""The embedded demo end to end (reduced settings): every stage, real Ollama, then the skip and
store-equivalence guarantees that make reruns cheap and the two backends interchangeable."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from shared import runs
from shared.schemas.eval import ScoreFile
from shared.settings import StoreSettings
from shared.store import LocalStore, S3Store

pytestmark = pytest.mark.slow

STAGES = ["scrape-sample", "process", "tokenize", "train", "export", "serve", "rag-index",
          "eval-scratch", "eval-scratch_base", "eval-rag", "score-scratch", "score-scratch_base", "score-rag", "report"]
SYSTEMS = ("scratch", "scratch_base", "rag")


def demo(root, *args, timeout=1800):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALS_")}
    proc = subprocess.run([sys.executable, "-m", "als_lm", "demo", "--smoke", "--root", str(root), *args],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.fixture(scope="module")
def local_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-local")
    demo(root)
    return root


def test_smoke_demo_publishes_every_stage_and_the_report(local_demo):
    store = LocalStore(local_demo / "artifacts")
    for stage in STAGES:
        assert runs.verify(store, runs.latest(store, stage)) == [], stage
    html = (local_demo / "report" / "report.html").read_text()
    assert "<html" in html.lower() and "data:image/png;base64," in html
    # The report is made of the published scores: both systems, each over every question its score run
    # scored, and the Accuracy table of report.md prints the graded accuracy and the strict correct rate
    # that run computed, with its n.
    numbers = json.loads(store.get_bytes(runs.latest(store, "report").output("report.json").key))
    assert set(numbers["systems"]) == set(SYSTEMS)  # the served template, raw as a base model, and RAG
    md = (local_demo / "report" / "report.md").read_text()
    accuracy_table = md.split("\n## Accuracy\n", 1)[1].split("\n## ", 1)[0]
    for system in SYSTEMS:
        scores = ScoreFile.model_validate_json(
            store.get_bytes(runs.latest(store, f"score-{system}").output("scores.json").key))
        n = numbers["systems"][system]["n"]
        assert n == len(scores.items) == scores.summary["n_items"] > 0
        assert numbers["accuracy"][system] == scores.summary["accuracy"]
        row = next(line for line in accuracy_table.splitlines() if line.startswith(f"| {system} |"))
        accuracy, correct = (cell.strip() for cell in row.split("|")[3:5])
        assert accuracy.startswith(f"{100 * scores.summary['accuracy']:.1f} %") and f"(n={n}" in accuracy, row
        assert correct.startswith(f"{100 * scores.summary['correct_rate']:.1f} %") and f"(n={n}" in correct, row


def test_trace_of_the_report_lists_the_whole_chain_to_the_scrape_run(local_demo):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ALS_")},
           "ALS_STORE__ROOT": str(local_demo / "artifacts")}
    proc = subprocess.run([sys.executable, "-m", "als_lm", "artifacts", "trace", "report"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    store = LocalStore(local_demo / "artifacts")
    for stage in STAGES[:-1]:
        assert runs.latest(store, stage).run in proc.stdout, f"{stage} is missing from the report's trace"
    assert proc.stdout.splitlines()[-1].endswith(f"scrape run(s): {runs.latest(store, 'scrape-sample').run}")


def test_second_run_skips_every_stage(local_demo):
    demo(local_demo)
    store = LocalStore(local_demo / "artifacts")
    for stage in STAGES:
        assert len(runs.runs(store, stage)) == 1, f"{stage} ran again although nothing changed"


def test_minio_store_gives_the_same_artifacts(local_demo, tmp_path):
    root = tmp_path / "demo-minio"
    demo(root, "--store", "minio", "--until", "4")
    local = LocalStore(local_demo / "artifacts")
    creds = __import__("json").loads((root / "minio" / "credentials.json").read_text())
    # The demo stopped its MinIO; start it again on the same data to read what it published.
    from shared import servers

    with servers.minio(root / "minio", access_key=creds["access_key"], secret_key=creds["secret_key"]) as server:
        remote = S3Store(StoreSettings(backend="s3", endpoint=server.endpoint, bucket="als-lm-demo",
                                       access_key=creds["access_key"], secret_key=creds["secret_key"]))
        for stage in STAGES[:4]:
            a, b = runs.latest(local, stage), runs.latest(remote, stage)
            assert a.fingerprint == b.fingerprint, stage
            # Training's CSV and throughput plot record wall-clock speed; everything else is exact.
            timed = {"metrics.csv", "plots/throughput.png"} if stage == "train" else set()
            assert ({o.name: o.sha256 for o in a.outputs if o.name not in timed}
                    == {o.name: o.sha256 for o in b.outputs if o.name not in timed}), stage
