"""``als-lm train``: publishes the contract's outputs, refuses bad input without touching anything,
survives SIGKILL mid-checkpoint and stops cleanly on SIGTERM."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from services.trainer import checkpoints
from services.trainer.model import GPT, GPTConfig
from shared import runs
from shared.schemas.model import ModelConfig, read_metrics
from shared.store import LocalStore
from tests.trainer.conftest import ALS_LM, als_lm, cli_env, publish_tokenize

TINY = str(Path(__file__).resolve().parents[2] / "services/trainer/configs/tiny-cpu.yaml")
FAST = ["--config", TINY, "--block-size", "32", "--micro-batch", "4", "--eval-batches", "2", "--log-interval", "1"]


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ALS_STORE__BACKEND", "local")
    monkeypatch.setenv("ALS_STORE__ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ALS_WORK_DIR", str(tmp_path / "work"))
    return LocalStore(tmp_path / "artifacts")


def tree_digest(root: Path) -> str:
    return hashlib.sha256(b"".join(p.as_posix().encode() + p.read_bytes()
                                   for p in sorted(root.rglob("*")) if p.is_file())).hexdigest()


def test_train_publishes_model_metrics_and_plots_then_skips_when_unchanged(env, sample_shards, monkeypatch,
                                                                           capsys, tmp_path):
    publish_tokenize(env, sample_shards)
    args = ["train", *FAST, "--max-steps", "6", "--eval-interval", "3", "--checkpoint-interval", "3"]
    assert als_lm(monkeypatch, *args) == 0
    assert "published train/" in capsys.readouterr().out
    manifest = runs.latest(env, "train")
    names = {o.name for o in manifest.outputs}
    assert {"model.pt", "tokenizer.json", "metrics.csv", "plots/loss.png", "plots/lr.png"} <= names
    assert manifest.metrics["steps"] == 6 and manifest.metrics["params"] > 0
    assert manifest.metrics["best_val_loss"] < manifest.metrics["unigram_val_loss"] + 1.0

    saved = torch.load(runs.fetch(env, manifest.output("model.pt"), tmp_path / "model.pt"), weights_only=False)
    config = ModelConfig.model_validate(saved["config"])  # what the exporter validates
    assert config.block_size == 32 and config.vocab_size == 512
    model = GPT(GPTConfig(**saved["config"]))
    model.load_state_dict(saved["model"])
    assert saved["model"]["lm_head.weight"].dtype == torch.float32
    assert torch.equal(saved["model"]["lm_head.weight"], saved["model"]["transformer.wte.weight"])

    rows = read_metrics(runs.fetch(env, manifest.output("metrics.csv"), tmp_path / "metrics.csv"))
    assert [r.step for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r.step for r in rows if r.val_loss is not None] == [3, 6]
    assert all(r.gpu_temp_c is None and r.mfu is None for r in rows)  # CPU: no NVML, no known peak

    assert als_lm(monkeypatch, *args) == 0
    assert "skipped (unchanged)" in capsys.readouterr().out
    assert len(runs.runs(env, "train")) == 1

    assert als_lm(monkeypatch, "train", "plot", "--out", str(tmp_path / "plots")) == 0
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 1000


def test_probe_snapshots_are_published_and_another_seed_trains_in_its_own_directory(env, sample_shards, monkeypatch,
                                                                                    tmp_path):
    publish_tokenize(env, sample_shards)
    monkeypatch.setenv("ALS_TRAIN__PROBE_AT_FRACTIONS", "[0.5]")
    args = ["train", *FAST, "--max-steps", "4", "--eval-interval", "4", "--checkpoint-interval", "4"]
    assert als_lm(monkeypatch, *args) == 0
    first = runs.latest(env, "train")
    assert first.metrics["snapshots"] == [{"name": "step00000002", "step": 2,
                                           "tokens_seen": first.metrics["tokens_seen"] // 2}]
    snapshot = torch.load(runs.fetch(env, first.output("snapshots/step00000002/model.pt"), tmp_path / "snapshot.pt"),
                          weights_only=True)
    assert ModelConfig.model_validate(snapshot["config"]).block_size == 32
    monkeypatch.setenv("ALS_SEED", "7")
    assert als_lm(monkeypatch, *args) == 0
    second = runs.latest(env, "train")
    assert second.run != first.run and second.settings["seed"] == 7
    assert second.metrics["checkpoint_dir"] != first.metrics["checkpoint_dir"]  # not resumed from seed 1337's
    assert second.metrics["steps"] == 4 and second.output("model.pt").sha256 != first.output("model.pt").sha256


def _meta_with_vocab(shards: Path, vocab: int, dest: Path) -> Path:
    meta = json.loads((shards / "meta.json").read_text())
    dest.write_text(json.dumps({**meta, "vocab_size": vocab}))
    return dest


def _other_architecture_checkpoint(root: Path) -> Path:
    info = checkpoints.CheckpointInfo(step=5, tokens_seen=5, val_loss=1.0, best_val_loss=1.0,
                                      evals_without_improvement=0, world_size=1, zero_stage=0,
                                      model=GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=32,
                                                      vocab_size=512).to_dict())
    path = root / checkpoints.tag(5)
    path.mkdir(parents=True)
    (path / checkpoints.MARKER).write_text(info.model_dump_json())
    (path / "mp_rank_00_model_states.pt").write_bytes(b"weights")
    return root


@pytest.mark.parametrize("case, problem", [
    ("unknown preset", "train.preset: Input should be 'tiny', 'mini', 'small', 'base' or 'large'"),
    ("cuda without a GPU", "device 'cuda' was requested but torch sees no CUDA device"),
    ("invalid deepspeed config", "sets gradient_clipping; these come from the train settings"),
    ("ids beyond the vocabulary", "train.bin contains token id 511, outside the model's vocabulary of 300;"),
    ("shard shorter than a window", "val.bin has 20 tokens, fewer than one context window"),
    ("checkpoint of another architecture", "another architecture: n_layer 2 there vs 4 here"),
])
def test_bad_input_fails_with_the_problem_named_and_overwrites_nothing(case, problem, env, sample_shards,
                                                                       monkeypatch, capsys, tmp_path):
    if case == "cuda without a GPU" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    replace, extra = {}, []
    if case == "unknown preset":
        extra = ["--preset", "huge"]
    elif case == "cuda without a GPU":
        extra = ["--device", "cuda"]
    elif case == "invalid deepspeed config":
        (tmp_path / "ds.json").write_text('{"gradient_clipping": 0.5, "zero_optimization": {"stage": 0}}')
        extra = ["--deepspeed-config", str(tmp_path / "ds.json")]
    elif case == "ids beyond the vocabulary":
        replace["meta_json"] = _meta_with_vocab(sample_shards, 300, tmp_path / "meta.json")
    elif case == "shard shorter than a window":
        np.arange(20, dtype=np.uint16).tofile(tmp_path / "val.bin")
        replace["val_bin"] = tmp_path / "val.bin"
    elif case == "checkpoint of another architecture":
        extra = ["--checkpoint-dir", str(_other_architecture_checkpoint(tmp_path / "ckpt"))]
    publish_tokenize(env, sample_shards, **replace)
    before = tree_digest(tmp_path / "artifacts"), tree_digest(tmp_path / "ckpt")

    assert als_lm(monkeypatch, "train", *FAST, "--max-steps", "2", *extra) == 1
    err = capsys.readouterr().err
    assert "error:" in err and problem in " ".join(err.split()), err
    assert "Traceback" not in err
    assert runs.runs(env, "train") == []
    assert (tree_digest(tmp_path / "artifacts"), tree_digest(tmp_path / "ckpt")) == before


def _wait_for(condition, timeout: float, proc: subprocess.Popen, log: Path):
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if time.time() > deadline:
            proc.kill()
            raise AssertionError(f"timed out:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _step_of(path: Path) -> int:
    return int(path.name.rsplit("step", 1)[1])


def _newest_save(train_dir: Path) -> Path | None:
    """The checkpoint directory of the highest step, published (``step*``) or not (``.tmp-step*``)."""
    saves = [p for p in train_dir.glob("tiny-*/*step*") if p.name.startswith(("step", ".tmp-step"))]
    return max(saves, key=_step_of, default=None)


def _unfinished(save: Path) -> bool:
    """Not every file of a single-rank save is there yet (the marker is meant to come last)."""
    return not all((save / f).exists() for f in (checkpoints.MARKER, "trainer_state_rank0.pt"))


def _freeze_mid_save(proc: subprocess.Popen, train_dir: Path, log: Path) -> Path:
    """Stop ``proc`` while its newest checkpoint directory, whatever its name, holds some files but not
    all (the write has started and not finished); returns that directory."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"training exited early ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if (newest := _newest_save(train_dir)) and _unfinished(newest):
            proc.send_signal(signal.SIGSTOP)
            newest = _newest_save(train_dir)
            if any(newest.iterdir()) and _unfinished(newest):
                return newest
            proc.send_signal(signal.SIGCONT)  # not started, or finished in between: try the next save
        time.sleep(0.001)
    proc.kill()
    raise AssertionError("never saw a checkpoint being written")


@pytest.mark.slow
def test_sigkill_mid_checkpoint_is_never_resumed_and_sigterm_checkpoints_then_resume_publishes(
        sample_shards, tmp_path, monkeypatch):
    store = LocalStore(tmp_path / "artifacts")
    publish_tokenize(store, sample_shards)
    env = cli_env(tmp_path / "artifacts", tmp_path / "work")
    args = [ALS_LM, "train", *FAST, "--eval-interval", "1000", "--eval-batches", "1", "--checkpoint-interval", "1",
            "--warmup-steps", "5"]

    def last_step() -> int:
        dirs = list((tmp_path / "work" / "train").glob("tiny-*"))
        found = checkpoints.last(dirs[0]) if dirs else None
        return found[1].step if found else 0

    # 1. a checkpoint every step, killed without warning while one is half-written: frozen (SIGSTOP)
    # the moment the newest save holds some of its files but not all, then killed. Caught by hand
    # (issue 25): a save written in place, marker last or first, fails the temporary-name assertion.
    log1 = tmp_path / "kill.log"
    proc = subprocess.Popen([*args, "--max-steps", "100000"], env=env, stderr=log1.open("w"), stdout=subprocess.DEVNULL)
    _wait_for(lambda: last_step() >= 3, 300, proc, log1)
    half_written = _freeze_mid_save(proc, tmp_path / "work" / "train", log1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = last_step()
    # Killed mid-write: files on disk, not all of them, under the temporary name, never a checkpoint.
    assert any(half_written.iterdir()) and _unfinished(half_written)
    assert half_written.name.startswith(".tmp-"), f"a half-written checkpoint is published as {half_written.name}"
    assert _step_of(half_written) > killed_at

    # 2. rerun: resumes from the last complete checkpoint; SIGTERM saves and exits with 143
    log2 = tmp_path / "term.log"
    proc = subprocess.Popen([*args, "--max-steps", "100000"], env=env, stderr=log2.open("w"), stdout=subprocess.DEVNULL)
    _wait_for(lambda: last_step() >= killed_at + 2, 300, proc, log2)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    text = " ".join(log2.read_text().split())
    assert "resumed from" in text and f"step{killed_at:08d} (step {killed_at}," in text
    assert "stopped by SIGTERM at step" in text and "Traceback" not in text
    stopped_at = last_step()
    assert stopped_at >= killed_at + 2
    assert runs.runs(store, "train") == []  # an interrupted run publishes nothing
    run_dir = next((tmp_path / "work" / "train").glob("tiny-*"))
    assert not list(run_dir.glob(".tmp-*"))

    # 3. resume to the end (in this process, to spare a third interpreter start): publishes
    for key in ("ALS_STORE__BACKEND", "ALS_STORE__ROOT", "ALS_WORK_DIR"):
        monkeypatch.setenv(key, env[key])
    assert als_lm(monkeypatch, *args[1:], "--max-steps", str(stopped_at + 2)) == 0
    assert runs.latest(store, "train").metrics["steps"] == stopped_at + 2
    assert [r.step for r in read_metrics(run_dir / "metrics.csv")] == list(range(1, stopped_at + 3))


@pytest.mark.gpu
@pytest.mark.parametrize("zero", [["--zero-stage", "0", "--offload", "none"], ["--zero-stage", "2", "--offload", "optimizer"]])
def test_cuda_bf16_run_logs_gpu_figures_and_exports_fp32(zero, sample_shards, tmp_path):
    """A subprocess: this test process has DeepSpeed bound to the CPU accelerator already."""
    store = LocalStore(tmp_path / "artifacts")
    publish_tokenize(store, sample_shards)
    done = subprocess.run([ALS_LM, "train", *FAST, "--device", "cuda", "--max-steps", "4", "--eval-interval", "2",
                           "--checkpoint-interval", "2", *zero],
                          env=cli_env(tmp_path / "artifacts", tmp_path / "work"), capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = runs.latest(store, "train")
    assert manifest.metrics["precision"] == "bf16" and manifest.metrics["device"] == "cuda"
    rows = read_metrics(runs.fetch(store, manifest.output("metrics.csv"), tmp_path / "metrics.csv"))
    assert all(r.gpu_mem_allocated_gb > 0 and r.gpu_temp_c is not None for r in rows)
    saved = torch.load(runs.fetch(store, manifest.output("model.pt"), tmp_path / "model.pt"), weights_only=False)
    assert all(t.dtype == torch.float32 for t in saved["model"].values())
    GPT(GPTConfig(**saved["config"])).load_state_dict(saved["model"])
