"""`make gpu-check` (benchmarks/gpu_check.py): what can be checked without a GPU — the scenarios it
takes from the plan, its arguments, its refusal without CUDA, and the table it writes."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from services.trainer.gpus import GPUS

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_it_runs_the_plans_three_fastest_base_setups_and_large_with_zero3_offload(gpu_check):
    from services.trainer import plan
    from services.trainer.settings import TrainConfig

    chosen = gpu_check.scenarios(GPUS["rtx3060-12gb"], 3.0, host_memory_gib=48)
    ranked = plan.make_plan(TrainConfig(preset="base"), GPUS["rtx3060-12gb"], cpu_adam_ns_per_param=3.0,
                            host_memory_gib=48).ranked
    expected = []
    for e in ranked:  # the plan's order, one row for each set-up, as the printed table shows it
        if (setup := (e.zero_stage, e.offload, e.gradient_checkpointing)) not in [x[:3] for x in expected]:
            expected.append((*setup, e.micro_batch, e.grad_accum))
    got = [tuple(c["settings"][k] for k in ("zero_stage", "offload", "gradient_checkpointing", "micro_batch",
                                             "grad_accum")) for c in chosen]
    assert [c["settings"]["preset"] for c in chosen] == ["base"] * 3 + ["large"]
    assert got[:3] == expected[:3]
    assert got[3][:2] == (3, "optimizer+params")
    assert len({c["name"] for c in chosen}) == 4


def test_without_cuda_it_refuses_in_one_line():
    done = subprocess.run([sys.executable, str(SCRIPT)], check=False, capture_output=True, text=True, timeout=120,
                          env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "sees no CUDA device" in done.stderr and done.stdout == ""


def test_make_gpu_check_without_a_gpu_stops_in_one_line_before_the_set_up(tmp_path):
    # no nvidia-smi on this PATH, whatever the machine has
    done = subprocess.run([shutil.which("make"), "-s", "-C", str(SCRIPT.parents[1]), "gpu-check"], check=False,
                          capture_output=True, text=True, timeout=30, env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == ("gpu-check: no NVIDIA GPU here (nvidia-smi lists none); "
                                           "run it on a GPU machine")
    assert done.stdout == ""  # scripts/setup.sh did not start


@pytest.mark.parametrize("argv, problem", [
    (["--steps", "0"], "--steps must be at least 1"),
    (["--budget", "-5"], "--budget must be at least 1"),
    (["--steps", "many"], "invalid int value"),
])
def test_bad_arguments_are_refused_with_the_reason(gpu_check, capsys, argv, problem):
    with pytest.raises(SystemExit) as stopped:
        gpu_check.parse_args(argv)
    assert stopped.value.code == 2
    assert problem in capsys.readouterr().err


def test_the_table_has_benchmarks_md_columns_and_puts_the_plan_beside_each_measurement(gpu_check):
    base = {"preset": "base", "zero_stage": 0, "offload": "none", "gradient_checkpointing": False,
            "micro_batch": 4, "grad_accum": 8}
    measured = {"name": "base", "settings": base, "device": "NVIDIA H100 80GB HBM3", "steps": 10,
                "peak_allocated_gib": 9.0, "peak_reserved_gib": 9.5, "predicted_allocated_gib": 8.0,
                "predicted_peak_at": "backward", "tokens_per_s": 100_000.0, "predicted_tokens_per_s": 120_000.0,
                "mfu": 0.42, "predicted_mfu": 0.5}
    failed = {"name": "large", "settings": {**base, "preset": "large", "zero_stage": 3, "offload": "optimizer+params"},
              "error": "Traceback ...\nRuntimeError: CUDA out of memory"}
    text = gpu_check.table([measured, failed], "make gpu-check", "2026-12-07")
    header, _, *rows = text.strip().splitlines()
    benchmarks_md = (SCRIPT.parents[1] / "docs" / "benchmarks.md").read_text()
    assert header in benchmarks_md  # the same columns as the table it is pasted into
    assert all(row.count(" | ") == 5 for row in rows)
    assert "9.00 GiB" in rows[0] and "8.00 GiB at the backward (+12.5%)" in rows[0]
    assert "100,000 tokens/s" in rows[0] and "120,000 tokens/s" in rows[0] and "MFU **42.0%**" in rows[0]
    assert "MFU ≥ 40 %" in rows[0] and "MFU" not in rows[1].split(" | ")[2]
    assert "**not run**: RuntimeError: CUDA out of memory" in rows[1]
    assert rows[0].endswith("| `make gpu-check` |")
