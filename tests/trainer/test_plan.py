"""`als-lm train --plan`: answers on a CPU-only machine without training, ranks what fits, says what
does not fit and by how much, and the presets' default DeepSpeed files follow its answer."""

from __future__ import annotations

import json

import pytest

from services.trainer import plan
from services.trainer.gpus import GPUS
from services.trainer.model import GPTConfig
from services.trainer.settings import TrainConfig
from tests.trainer.conftest import als_lm

FIXED_ADAM = ["--cpu-adam-ns", "3", "--host-memory-gb", "48"]  # the seed's host, no measurement


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ALS_STORE__BACKEND", "local")
    monkeypatch.setenv("ALS_STORE__ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ALS_WORK_DIR", str(tmp_path / "work"))
    return tmp_path


def json_plan(monkeypatch, capsys, *args) -> tuple[int, plan.Plan]:
    code = als_lm(monkeypatch, "train", "--plan", "--json", *args)
    return code, plan.Plan.model_validate_json(capsys.readouterr().out)


def test_plan_prints_the_ranked_table_and_trains_nothing(env, monkeypatch, capsys):
    assert als_lm(monkeypatch, "train", "--plan", "--preset", "base", "--gpu", "rtx3060-12gb") == 0
    out = capsys.readouterr().out
    assert "configurations fit" in out
    assert "fastest" in out
    assert "als-lm train --preset base --zero-stage" in out
    assert "measured here: torch fused AdamW" in out  # the CPU Adam step was timed on this machine
    assert not (env / "work").exists() and not (env / "artifacts").exists()


def test_json_ranks_only_fitting_configurations_fastest_first(env, monkeypatch, capsys):
    code, p = json_plan(monkeypatch, capsys, "--preset", "base", "--gpu", "rtx3060-12gb", *FIXED_ADAM)
    assert code == 0
    assert p.ranked and p.fastest == p.ranked[0]
    assert all(e.fits and e.peak_gib <= GPUS["rtx3060-12gb"].memory_gib for e in p.ranked)
    speeds = [e.tokens_per_s for e in p.ranked]
    assert speeds == sorted(speeds, reverse=True)
    assert p.rejected > 0  # some configurations (stage 0, large micro-batches) do not fit 12 GB
    assert p.token_budget == 50_000 * 32 * 1024


def test_base_fits_a_12gb_card_without_offload_so_its_default_does_not_offload(env, monkeypatch, capsys):
    _, p = json_plan(monkeypatch, capsys, "--preset", "base", "--gpu", "rtx3060-12gb", *FIXED_ADAM)
    assert p.fastest.offload == "none"
    assert p.asked.offload == "none"  # the preset's default DeepSpeed file
    assert p.asked.fits


def test_large_needs_optimizer_offload_on_a_12gb_card_and_its_default_offloads(env, monkeypatch, capsys):
    _, p = json_plan(monkeypatch, capsys, "--preset", "large", "--gpu", "rtx3060-12gb", *FIXED_ADAM)
    assert all(e.offload != "none" for e in p.ranked)
    assert p.asked.offload == p.fastest.offload == "optimizer"
    assert p.asked.fits


def test_a_configuration_that_cannot_fit_says_so_and_by_how_much(env, monkeypatch, capsys):
    code = als_lm(monkeypatch, "train", "--plan", "--preset", "large", "--gpu", "rtx3060-12gb", "--zero-stage", "0",
                  "--offload", "none", *FIXED_ADAM)
    out = capsys.readouterr().out
    assert code == 1
    assert "does not fit" in out and "short by" in out
    _, p = json_plan(monkeypatch, capsys, "--preset", "large", "--gpu", "rtx3060-12gb", "--zero-stage", "0",
                     "--offload", "none", *FIXED_ADAM)
    # 20 bytes a parameter for 1.65B parameters is ~31 GiB before any activation
    assert p.asked.short_by_gib == pytest.approx(p.asked.peak_gib - 12.0)
    assert p.asked.short_by_gib > 19


def test_host_memory_that_cannot_hold_the_offloaded_states_is_named(env, monkeypatch, capsys):
    _, p = json_plan(monkeypatch, capsys, "--preset", "large", "--gpu", "rtx3060-12gb", "--cpu-adam-ns", "3",
                     "--host-memory-gb", "16")
    assert not p.asked.fits and "host memory" in p.asked.why_not
    assert p.fastest is None


def test_unknown_gpu_lists_the_known_ones(env, monkeypatch, capsys):
    assert als_lm(monkeypatch, "train", "--plan", "--gpu", "rtx9090") == 1
    err = capsys.readouterr().err
    assert "unknown GPU 'rtx9090'" in err
    assert all(name in err for name in GPUS)


def test_plan_needs_a_gpu_or_its_figures(env, monkeypatch, capsys):
    assert als_lm(monkeypatch, "train", "--plan", "--gpu-memory-gb", "16") == 2
    assert "--gpu-tflops" in capsys.readouterr().err
    code, p = json_plan(monkeypatch, capsys, "--preset", "small", "--gpu-memory-gb", "16", "--gpu-tflops", "100",
                        *FIXED_ADAM)
    assert code == 0 and p.assumptions.gpu_memory_gib == 16


def test_a_slower_cpu_adam_slows_only_the_offloaded_configurations(env, monkeypatch, capsys):
    _, fast = json_plan(monkeypatch, capsys, "--preset", "base", "--gpu", "a100-80gb", "--cpu-adam-ns", "1",
                        "--host-memory-gb", "48")
    _, slow = json_plan(monkeypatch, capsys, "--preset", "base", "--gpu", "a100-80gb", "--cpu-adam-ns", "10",
                        "--host-memory-gb", "48")

    def speeds(p):
        return {(e.zero_stage, e.offload, e.gradient_checkpointing, e.micro_batch): e.tokens_per_s for e in p.ranked}

    a, b = speeds(fast), speeds(slow)
    for key in a:
        if key[1] == "none":
            assert b[key] == pytest.approx(a[key])
        else:
            assert b[key] < a[key]
            # 9 ns a parameter more is 9e-9 * N seconds more a step
            step_a, step_b = 32 * 1024 / a[key], 32 * 1024 / b[key]
            assert step_b - step_a == pytest.approx(9e-9 * fast.params, rel=1e-6)


def test_checkpointing_keeps_one_block_and_the_block_inputs():
    cfg = GPTConfig(n_layer=24, n_head=16, n_embd=1024, block_size=1024, vocab_size=16384)
    full = plan.activation_bytes(cfg, 4, 1024, 2, checkpointing=False, flash=True)
    ckpt = plan.activation_bytes(cfg, 4, 1024, 2, checkpointing=True, flash=True)
    assert ckpt < full / 2
    # doubling the micro-batch doubles every activation
    assert plan.activation_bytes(cfg, 8, 1024, 2, False, True) == 2 * full
    # Korthikanti et al.'s 34·s·b·h + 5·a·s²·b per layer in 16-bit, recovered from the math-kernel model
    one = GPTConfig(n_layer=1, n_head=16, n_embd=1024, block_size=1024, vocab_size=16384)
    zero = GPTConfig(n_layer=0, n_head=16, n_embd=1024, block_size=1024, vocab_size=16384)
    s, b, h, a = 1024, 1, 1024, 16
    layer = (plan.activation_bytes(one, b, s, 2, False, flash=False)
             - plan.activation_bytes(zero, b, s, 2, False, flash=False))
    assert layer - 4 * s * b * h == 34 * s * b * h + 5 * a * s * s * b  # minus the scaled Q and K copies


def test_model_states_come_from_deepspeeds_estimators():
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    n = 320_137_216
    assert plan.model_state_bytes(2, "none", n, 1)[0] == 20 * n  # bf16 weights + grads, fp32 master + grads + Adam
    assert plan.model_state_bytes(2, "optimizer", n, 1) == estimate_zero2_model_states_mem_needs(n)[::-1]
    assert plan.model_state_bytes(0, "none", n, 1, precision="fp32") == (16 * n, 0)


def test_plan_for_the_settings_file_of_the_seeds_card_is_its_fastest():
    """configs/base-gpu.yaml is the plan's fastest configuration for an RTX 3060 (ties broken by headroom)."""
    import yaml

    from services.trainer.settings import CONFIG_DIR

    settings = yaml.safe_load((CONFIG_DIR / "base-gpu.yaml").read_text())
    p = plan.make_plan(TrainConfig(**settings), GPUS["rtx3060-12gb"], cpu_adam_ns_per_param=3, host_memory_gib=48)
    assert p.asked.fits
    assert p.asked.tokens_per_s == pytest.approx(p.fastest.tokens_per_s)
    assert json.loads(p.model_dump_json())["asked"]["offload"] == "none"
