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


def test_stop_lets_a_step_that_cannot_resume_finish_and_starts_no_other(tmp_path, monkeypatch):
    stage = tmp_path / "stage"
    stage.write_text("#!/bin/sh\necho \"$3\" >> \"$(dirname \"$0\")/started\"\nsleep 1\n"
                     "echo \"$3\" >> \"$(dirname \"$0\")/finished\"\n")
    stage.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(stage))
    steps = [Step("probe", ("probe", "rag"), resumable=False),
             Step("answers", ("eval", "run", "--system", "rag"))]
    background = Background(SimpleNamespace(env={}), steps, tmp_path / "log" / "background.log").start()
    while not (tmp_path / "started").exists():
        time.sleep(0.05)
    background.stop(finish_unresumable=True)
    [(step, code, _)] = background.join()
    assert step is steps[0] and code == 0, "the probe ran to its end"
    assert (tmp_path / "finished").read_text() == "probe\n"
    assert (tmp_path / "started").read_text() == "probe\n", "the answers were left to the foreground"
