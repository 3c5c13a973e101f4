"""`als-lm train --plan`: answers on a CPU-only machine without training, ranks what fits, says what
does not fit and by how much, and the presets' default DeepSpeed files follow its answer."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch

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
    # 16 bytes a parameter for 1.65B parameters is ~24.5 GiB before any activation, 24 at the step
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
    full = plan.activations(cfg, 4, 1024, 2, checkpointing=False).peak
    ckpt = plan.activations(cfg, 4, 1024, 2, checkpointing=True).peak
    assert ckpt < full / 2
    # doubling the micro-batch doubles every activation
    assert plan.activations(cfg, 8, 1024, 2, False).peak == 2 * full
    # Korthikanti et al.'s 34·s·b·h a layer in 16-bit with dropout, the s² terms replaced by the
    # flash kernel's fp32 log-sum-exp
    s, b, h, a = 1024, 4, 1024, 16
    assert plan.activations(cfg, b, s, 2, False).per_block == 34 * s * b * h + 4 * a * s * b


def test_model_states_come_from_deepspeeds_estimators():
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    n = 320_137_216
    assert plan.model_state_bytes(2, "none", n, 1)[0] == 20 * n  # bf16 weights + grads, fp32 master + grads + Adam
    assert plan.model_state_bytes(2, "optimizer", n, 1) == estimate_zero2_model_states_mem_needs(n)[::-1]
    assert plan.model_state_bytes(0, "none", n, 1, precision="fp32") == (16 * n, 0)
    assert plan.model_state_bytes(0, "none", n, 1)[0] == 16 * n  # no estimator: DeepSpeed's code, tested below




# ---- the plan against DeepSpeed's own allocation (CPU accelerator, bf16, as on the GPU) ----

SMALL = {"n_layer": 2, "n_head": 4, "n_embd": 256, "block_size": 64, "vocab_size": 4096, "dropout": 0.0}


def bf16_engine(foreach: bool | None = None, **shape):
    """A DeepSpeed engine as `als-lm train` builds it on CUDA (ZeRO 0, bf16, torch AdamW), on the CPU."""
    import deepspeed

    from services.trainer.model import GPT
    from services.trainer.train import deepspeed_config, init_distributed

    init_distributed("cpu")
    torch.manual_seed(0)
    model = GPT(GPTConfig(**{**SMALL, **shape}))
    ds = deepspeed_config(TrainConfig(preset="tiny", micro_batch=2, grad_accum=1), "cpu", "bf16")
    if foreach is not None:  # torch picks foreach on CUDA by itself, the single-tensor loop on the CPU
        ds["optimizer"]["params"]["foreach"] = foreach
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.param_groups(0.1), config=ds)
    return engine, model.num_params()


def train_step(engine, step: bool = True) -> torch.Tensor:
    cfg = engine.module.config
    x = torch.randint(0, cfg.vocab_size, (2, cfg.block_size))
    logits, loss = engine(x, x)
    engine.backward(loss)
    if step:
        engine.step()
    return logits


def held_bytes(engine) -> int:
    """Bytes of every distinct storage the engine's model and optimizer hold."""
    opt = engine.optimizer
    tensors = [t for p in engine.module.parameters() for t in (p, p.grad) if t is not None]
    tensors += [t for group in opt.fp32_groups for p in group for t in (p, p.grad) if t is not None]
    tensors += [t for state in opt.state.values() for t in state.values() if torch.is_tensor(t)]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


def test_zero0_bf16_holds_16_bytes_a_parameter_through_backward_as_the_plan_says():
    from deepspeed.runtime.fp16.unfused_optimizer import FP16_UnfusedOptimizer

    engine, n = bf16_engine()
    assert isinstance(engine.optimizer, FP16_UnfusedOptimizer)  # bf16 + torch AdamW at ZeRO 0
    train_step(engine)  # the first step creates Adam's moments
    train_step(engine, step=False)  # forward and backward: bf16 gradients, no fp32 ones
    states, _ = plan.model_state_bytes(0, "none", n, 1)
    assert states == 16 * n
    # the only extra bytes are AdamW's per-tensor step counters (4 bytes each)
    assert held_bytes(engine) == pytest.approx(states, rel=0.002)


class Allocated(NamedTuple):
    peak: int  # the most held at once while the call ran, above what was held before it
    end: int  # what the call left held


def allocated_bytes(fn) -> Allocated:
    """Bytes torch's CPU allocator held while ``fn`` ran, above what it held before, summed from the profiler's
    allocation events in time order. Not the process's RSS: the C library's heap and the tests run before in
    the same process move that by tens of MB."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # kineto_results holds every allocation and free as a "[memory]" event; the public tables only sum them per op
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return Allocated(peak, held)


def test_optimizer_step_adds_fp32_gradients_and_the_foreach_temporary_as_the_plan_says():
    """The step's peak above the states held through backward."""
    engine, n = bf16_engine(foreach=True, n_layer=8, n_embd=512, n_head=8)  # ~29M parameters
    train_step(engine)
    train_step(engine, step=False)
    added = allocated_bytes(engine.step).peak
    predicted = plan.optimizer_step_bytes(0, "none", n, 1)
    assert predicted == 8 * n  # fp32 gradients (FP16_UnfusedOptimizer.step) + _foreach_sqrt's result
    assert added == pytest.approx(predicted, rel=0.10)


@pytest.mark.parametrize("dtype, dropout", [(torch.float32, 0.0), (torch.float32, 0.1), (torch.bfloat16, 0.1)])
def test_one_block_keeps_what_the_plan_counts_for_the_cpu(dtype, dropout):
    """What one block keeps for backward, counted on the tensors autograd saves (distinct storages,
    parameters aside), against the plan's bytes for one layer on the CPU: its flash kernel without
    dropout (the output counted once, as the projection's input), its fp32 math kernel and
    dtype-sized dropout masks with dropout."""
    from services.trainer.model import Block

    cfg = GPTConfig(**{**SMALL, "dropout": dropout})
    block = Block(cfg).to(dtype)
    params = {p.untyped_storage().data_ptr() for p in block.parameters()}
    saved = {}

    def pack(t):
        if t.untyped_storage().data_ptr() not in params:
            saved[t.untyped_storage().data_ptr()] = (t.untyped_storage().nbytes(), t.dtype, tuple(t.shape))
        return t

    b, s = 2, SMALL["block_size"]
    x = torch.randn(b, s, cfg.n_embd, requires_grad=True, dtype=dtype)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        block(x)
    lse = (b, cfg.n_head, s)  # the flash kernel's log-sum-exp: no s x s matrix is kept
    assert any(shape == lse for _, _, shape in saved.values()) == (dropout == 0)
    layer = plan.activations(cfg, b, s, dtype.itemsize, False, device="cpu").per_block
    # LayerNorm's fp32 mean and 1/std (8 bytes a row each) are what the plan leaves out
    assert sum(nbytes for nbytes, _, _ in saved.values()) == pytest.approx(layer, rel=0.01)


def test_zero0_gradients_are_not_there_at_backwards_peak_without_accumulation():
    """After each optimizer step DeepSpeed frees the gradients (set_to_none), so a micro-batch right
    after a step peaks without them; one that accumulates into the previous micro-batch's peaks
    with them. The two backward passes' peaks, counted from the same point, against the plan."""
    # ~34M parameters; the head's transient (vocabulary x context) is backward's largest
    shape = {"n_layer": 8, "n_embd": 512, "n_head": 8, "block_size": 256, "vocab_size": 16384}
    engine, n = bf16_engine(**shape)
    train_step(engine)
    assert all(p.grad is None for p in engine.module.parameters())
    after_step = allocated_bytes(lambda: train_step(engine, step=False))
    accumulating = allocated_bytes(lambda: train_step(engine, step=False))
    cfg = GPTConfig(**{**SMALL, **shape})
    planned = [plan.training_memory(cfg, n, 1, stage=0, offload="none", checkpointing=False, micro_batch=2,
                                    grad_accum=accum, device="cpu", foreach=False) for accum in (1, 2)]
    assert planned[1].backward - planned[0].backward == 2 * n  # the bf16 gradients
    # the second pass starts with what the first left held (its gradients)
    assert after_step.end + accumulating.peak - after_step.peak == pytest.approx(2 * n, rel=0.10)


def test_zero0_all_reduces_a_flat_copy_of_the_gradients_as_the_plan_says():
    """DeepSpeed's engine ends each step's last backward by flattening the gradients to all-reduce
    them, on one rank too: what that all-reduce adds to the peak, against the plan."""
    engine, n = bf16_engine(n_layer=8, n_embd=512, n_head=8)  # ~27M parameters
    train_step(engine)
    engine.enable_backward_allreduce = False  # run it by hand below, alone
    train_step(engine, step=False)
    added = allocated_bytes(engine.allreduce_gradients).peak
    predicted = plan.allreduce_bytes(0, n, 1)
    assert predicted == 2 * n  # the bf16 gradients, far below one 500M-element bucket
    assert added == pytest.approx(predicted, rel=0.10)


def test_the_plan_takes_a_model_shape_instead_of_a_preset(env, monkeypatch, capsys):
    # the public RTX 3060 project's 24 x 1280 model with GPT-2's vocabulary: 538M parameters
    code, p = json_plan(monkeypatch, capsys, "--n-layer", "24", "--n-head", "20", "--n-embd", "1280",
                        "--vocab-size", "50257", "--gpu", "rtx3060-12gb", *FIXED_ADAM)
    assert code in (0, 1) and p.custom_shape
    assert (p.n_layer, p.n_head, p.n_embd) == (24, 20, 1280)
    assert p.params == pytest.approx(538e6, rel=0.001)
    assert als_lm(monkeypatch, "train", "--plan", "--n-embd", "1000", "--n-head", "16", "--gpu", "rtx3060-12gb",
                  *FIXED_ADAM) == 1
    assert "n_embd=1000 is not divisible by n_head=16" in capsys.readouterr().err


def test_offloaded_weights_come_back_as_bf16():
    """ZeRO-2 with the optimizer on the CPU copies the updated fp32 partition into a bf16 host buffer
    of one element a parameter, which goes to the device; the plan charges the link 2 bytes."""
    import deepspeed

    from services.trainer.model import GPT
    from services.trainer.train import deepspeed_config, init_distributed

    init_distributed("cpu")
    model = GPT(GPTConfig(**SMALL))
    ds = deepspeed_config(TrainConfig(preset="tiny", micro_batch=2, grad_accum=1, zero_stage=2, offload="optimizer"),
                          "cpu", "bf16")
    # torch's AdamW instead of DeepSpeedCPUAdam, whose JIT build takes minutes; the buffers are the same
    ds["optimizer"]["params"]["torch_adam"], ds["zero_force_ds_cpu_optimizer"] = True, False
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.param_groups(0.1), config=ds)
    buffers = engine.optimizer.param_buffer_of_bit16_for_cpu_offload_groups
    assert {b.dtype for b in buffers} == {torch.bfloat16}
    assert sum(b.numel() for b in buffers) == model.num_params()

    p = plan.make_plan(TrainConfig(preset="base", zero_stage=2, offload="optimizer", grad_accum=8, micro_batch=4),
                       GPUS["rtx3060-12gb"], cpu_adam_ns_per_param=3, host_memory_gib=48)
    # bf16 gradients out after each of the 8 backward passes, bf16 weights back once a step
    assert p.asked.transfer_s == pytest.approx((8 * 2 * p.params + 2 * p.params) / (24.0 * 1e9))


def test_the_peak_is_the_larger_of_backward_and_the_optimizer_step():
    p = plan.make_plan(TrainConfig(preset="base", gradient_checkpointing=True, micro_batch=1, grad_accum=32),
                       GPUS["a100-80gb"], cpu_adam_ns_per_param=3, host_memory_gib=48)
    zero0 = next(e for e in p.ranked if (e.zero_stage, e.offload, e.gradient_checkpointing, e.micro_batch)
                 == (0, "none", True, 1))
    assert zero0.peak_at == "optimizer step"  # 24 bytes a parameter outweigh one micro-batch's activations
    assert zero0.step_gib == pytest.approx(8 * p.params / 2**30)
    logits = 2 * 1024 * 16384 / 2**30
    assert zero0.peak_gib == pytest.approx(zero0.model_states_gib + zero0.step_gib + logits + zero0.reserve_gib)


# ---- the defaults and the GPU configs follow the plan's fastest for the card they name ----

def _setup(e: plan.Estimate) -> tuple:
    return e.zero_stage, e.offload, e.gradient_checkpointing, e.micro_batch, e.grad_accum


@pytest.mark.parametrize("source", ["defaults", "base-gpu.yaml", "large-gpu.yaml", "experiment-gpu.yaml"])
def test_defaults_and_gpu_configs_are_the_plans_fastest_for_an_rtx_3060(source):
    import yaml

    from services.trainer.settings import CONFIG_DIR

    settings = {} if source == "defaults" else yaml.safe_load((CONFIG_DIR / source).read_text())
    settings = settings.get("train", settings) if source.startswith("experiment") else settings
    cfg = TrainConfig(**{k: v for k, v in settings.items() if k in TrainConfig.model_fields})
    p = plan.make_plan(cfg, GPUS["rtx3060-12gb"], cpu_adam_ns_per_param=3, host_memory_gib=48)
    assert p.asked.fits
    assert _setup(p.asked) == _setup(p.fastest), f"{source} asks {plan.describe(p.asked)}; fastest: " \
                                                 f"{plan.describe(p.fastest)}"


def test_the_rtx_3060_table_in_docs_training_md_is_the_current_plans(env, monkeypatch, capsys):
    from pathlib import Path

    assert als_lm(monkeypatch, "train", "--plan", "--preset", "base", "--gpu", "rtx3060-12gb", "--host-memory-gb",
                  "48", "--cpu-adam-ns", "7.07") == 0  # the command docs/training.md names
    table = [line for line in capsys.readouterr().out.splitlines() if line[:1] in ("┏", "┃", "┡", "│", "└")]
    doc = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    block = doc.split("### The seed's card: RTX 3060 12 GB")[1].split("```text")[1].split("```")[0]
    assert [line for line in block.splitlines() if line] == table, "regenerate the table in docs/training.md"
