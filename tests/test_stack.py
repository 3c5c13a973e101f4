"""The experiment's background steps (als_lm/stack.py): stopped mid-step, none started after."""

from __future__ import annotations

import sys
import time
from types import SimpleNamespace

from als_lm.stack import Background, Step


def test_stop_ends_the_running_step_and_starts_no_other(tmp_path, monkeypatch):
    slow = tmp_path / "slow-stage"
    slow.write_text("#!/bin/sh\necho started >> \"$(dirname \"$0\")/started\"\nexec sleep 60\n")
    slow.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(slow))  # each step runs `<executable> -m als_lm ...`
    steps = [Step("first", ("eval", "run", "--system", "rag")), Step("second", ("eval", "run", "--system", "x"))]
    background = Background(SimpleNamespace(env={}), steps, tmp_path / "log" / "baselines.log").start()
    while not (tmp_path / "started").exists():
        time.sleep(0.05)
    t0 = time.monotonic()
    background.stop()
    assert time.monotonic() - t0 < 30, "the running step was terminated, not waited for"
    [(step, code, _)] = background.join()
    assert step is steps[0] and code < 0, "stopped by a signal: the foreground asks what it left"
    assert (tmp_path / "started").read_text() == "started\n", "the second step never started"


def test_stop_lets_the_steps_that_cannot_resume_finish_and_starts_no_other(tmp_path, monkeypatch):
    stage = tmp_path / "stage"
    stage.write_text("#!/bin/sh\necho \"$3 $4\" >> \"$(dirname \"$0\")/started\"\nsleep 1\n"
                     "echo \"$3 $4\" >> \"$(dirname \"$0\")/finished\"\n")
    stage.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(stage))
    steps = [Step("index", ("rag", "index"), resumable=False), Step("probe", ("probe", "rag"), resumable=False),
             Step("answers", ("eval", "run", "--system", "rag"))]
    background = Background(SimpleNamespace(env={}), steps, tmp_path / "log" / "background.log").start()
    while not (tmp_path / "started").exists():
        time.sleep(0.05)
    background.stop(finish_unresumable=True)
    assert [(step, code) for step, code, _ in background.join()] == [(steps[0], 0), (steps[1], 0)], \
        "the index and the probe ran to their end, the one in line after the stop too"
    assert (tmp_path / "finished").read_text() == "rag index\nprobe rag\n"
    assert (tmp_path / "started").read_text() == "rag index\nprobe rag\n", "the answers were left to the foreground"

def test_the_other_seeds_alternate_between_the_background_lane_and_the_foreground(tmp_path):
    """The second seed trains beside the checkpoints, the third after them in the foreground, and so on."""
    from als_lm.experiment import ExperimentConfig, lane_name, seed_steps

    config = ExperimentConfig(seeds=[1, 2, 3, 4, 5], train={"preset": "mini"})
    beside, after = seed_steps(config, tmp_path / "train.yaml")
    assert [lane_name(s) for s in beside] == ["training seed 2", "training seed 4"]
    assert [lane_name(s) for s in after] == ["training seed 3", "training seed 5"]
    assert all(s.argv == ("train", "--config", str(tmp_path / "train.yaml")) for s in beside + after)
    assert seed_steps(ExperimentConfig(seeds=[1], train={}), tmp_path / "train.yaml") == ([], [])
