"""`als-lm train --plan`: will a configuration fit a GPU, how fast will it train, and which is fastest.

Arithmetic and one short measurement, never a training step, so it answers in seconds on a
machine without a GPU:

- **model states** (parameters, gradients, optimizer) come from DeepSpeed's own estimators,
  ``estimate_zero2_model_states_mem_needs`` and ``estimate_zero3_model_states_mem_needs``
  (bf16 weights and gradients, fp32 master weights, gradients and Adam moments). DeepSpeed has no
  estimator for stage 0; on one GPU its bf16 optimizer holds the same copies as stage 2, so the
  stage-2 figure stands in for it;
- **activations** are counted tensor by tensor as in Korthikanti et al. 2022, "Reducing Activation
  Recomputation in Large Transformer Models" (§4.1: 34·s·b·h + 5·a·s²·b bytes a layer in 16-bit),
  generalised to the element size and to this model's attention kernel, plus the embedding and the
  output head (logits, their fp32 log-softmax and its gradient); with gradient checkpointing each
  block keeps only its input and one block is recomputed at a time;
- **buffers**: the ZeRO gradient buckets of the DeepSpeed file the configuration would use;
- **reserve**: the CUDA context, cuBLAS workspaces and allocator slack, a stated constant;
- **speed**: (6·N + 12·L·d·s) FLOPs a token (PaLM appendix B; a forward pass more with
  checkpointing) at a stated fraction of the GPU's dense bf16 peak, plus, when the optimizer is
  offloaded, the PCIe copies at a stated bandwidth and the Adam step on this machine's CPU,
  measured now on a slice of parameters and scaled linearly (``measure_cpu_adam``). Offload costs
  are added, not overlapped: the step waits for the last gradients and the next forward for the
  updated parameters.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel

from services.trainer.gpus import GIB, GPU
from services.trainer.model import GPT, PRESETS, GPTConfig
from services.trainer.settings import CONFIG_DIR, DEEPSPEED_BY_PRESET, TrainConfig
from shared.errors import InvalidInput

SEED_VOCAB = 16_384
DEFAULT_MFU = 0.35  # hardware FLOPs utilisation of an uncompiled GPT in bf16; nanoGPT reports ~0.4 compiled
DEFAULT_RESERVE_GIB = 1.0  # CUDA context (~0.3-0.5 GiB), cuBLAS workspace, allocator fragmentation
CPU_ADAM_SLICE = 2**24  # 16M parameters: 256 MB of fp32 state, far beyond any CPU cache, as the real step is

Offload = Literal["none", "optimizer", "optimizer+params"]

# The configurations the plan compares on one GPU, each with the repository's DeepSpeed file it
# starts from (bucket sizes); ZeRO-1 is left out: on one GPU it holds what stage 2 holds.
CANDIDATES: tuple[tuple[int, Offload, str], ...] = (
    (0, "none", "zero0"),
    (2, "none", "zero2-offload"),
    (2, "optimizer", "zero2-offload"),
    (3, "none", "zero3-offload"),
    (3, "optimizer", "zero3-offload"),
    (3, "optimizer+params", "zero3-offload"),
)
OFFLOAD_ORDER = {"none": 0, "optimizer": 1, "optimizer+params": 2}


class Assumptions(BaseModel):
    gpu: str
    gpu_memory_gib: float
    gpu_bf16_tflops: float
    pcie_gbs: float
    mfu: float
    reserve_gib: float
    host_memory_gib: float
    cpu_adam_ns_per_param: float
    cpu_adam_source: str
    vocab_size: int
    precision: str = "bf16"
    attention: str = "flash (F.scaled_dot_product_attention on CUDA): no s x s matrix is kept"


class Estimate(BaseModel):
    zero_stage: int
    offload: Offload
    gradient_checkpointing: bool
    micro_batch: int
    grad_accum: int
    deepspeed_file: str
    model_states_gib: float
    activations_gib: float
    buffers_gib: float
    reserve_gib: float
    peak_gib: float
    host_gib: float
    fits: bool
    short_by_gib: float  # how much more GPU (or host) memory it would need; 0 when it fits
    why_not: str | None
    compute_s: float
    transfer_s: float
    cpu_adam_s: float
    step_s: float
    tokens_per_s: float
    days_to_budget: float

    @property
    def options(self) -> str:
        """The `als-lm train` options that select this configuration."""
        return (f"--zero-stage {self.zero_stage} --offload {self.offload} --micro-batch {self.micro_batch} "
                f"--grad-accum {self.grad_accum} --{'' if self.gradient_checkpointing else 'no-'}gradient-checkpointing")


class Plan(BaseModel):
    preset: str
    params: int
    largest_layer_params: int
    n_layer: int
    n_embd: int
    n_head: int
    block_size: int
    sequences_per_step: int
    tokens_per_step: int
    token_budget: int
    assumptions: Assumptions
    asked: Estimate
    ranked: list[Estimate]  # every configuration that fits, fastest first
    fastest: Estimate | None
    rejected: int  # configurations compared that do not fit


def model_shape(preset: str, vocab_size: int, block_size: int | None) -> tuple[GPTConfig, int, int]:
    """(config, parameters, largest module's own parameters), counted on the meta device (no memory)."""
    cfg = GPTConfig(**{**PRESETS[preset], **({"block_size": block_size} if block_size else {})},
                    vocab_size=vocab_size)
    with torch.device("meta"):
        model = GPT(cfg)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return cfg, model.num_params(), largest  # as DeepSpeed's *_all_live estimators count it


def model_state_bytes(stage: int, offload: Offload, params: int, largest_layer: int,
                      precision: str = "bf16") -> tuple[int, int]:
    """(GPU bytes, host bytes) for parameters, gradients and optimizer states on one GPU.

    ``precision="fp32"`` is plain fp32 training (the CPU path): 4 + 4 + 8 bytes a parameter and no
    master copy, which is not what DeepSpeed's mixed-precision estimators describe.
    """
    if precision == "fp32":
        if stage or offload != "none":
            raise ValueError("the fp32 model covers ZeRO 0 without offload only")
        return 16 * params, 0
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    if stage < 3:
        cpu, gpu = estimate_zero2_model_states_mem_needs(params, cpu_offload=offload != "none")
        return gpu, cpu
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
        params, largest_layer, cpu_offload=offload != "none", cpu_offload_params=offload == "optimizer+params")
    return gpu, cpu


def activation_bytes(cfg: GPTConfig, micro_batch: int, seq: int, element_bytes: int, checkpointing: bool,
                     flash: bool) -> int:
    """Peak bytes of activations kept for backward in one micro-batch (Korthikanti et al. 2022, §4.1).

    Per block, with e bytes an element and 1-byte dropout masks: the two LayerNorm inputs, the QKV
    input, Q, K and V, the attention-projection input, the MLP input, the GELU input and output
    (4h each) = 16·e·s·b·h, plus two residual-dropout masks = 2·s·b·h (34·s·b·h at e = 2, the
    paper's figure). The attention scores add (2e + 1)·a·s²·b (softmax output, dropout mask and
    output) and the scaled Q and K copies 2·e·s·b·h on PyTorch's math kernel; a flash kernel keeps
    only its output e·s·b·h and the log-sum-exp. Outside the blocks: the embedding output and
    its dropout mask, the final LayerNorm input and output, and at the head the logits (held by
    the caller through backward) with the fp32 log-softmax output, its gradient and the gradient
    of the logits, 12 bytes an element more, the largest transient of the step. With gradient
    checkpointing each block keeps its input, and one block is recomputed at a time after the
    head's transient has been freed.
    """
    b, s, h, a, L, V = micro_batch, seq, cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.vocab_size
    sbh = s * b * h
    attention = e_flash = 0
    if flash:
        e_flash = element_bytes * sbh + 4 * a * s * b
    else:
        attention = (2 * element_bytes + 1) * a * s * s * b + 2 * element_bytes * sbh
    layer = (16 * element_bytes + 2) * sbh + attention + e_flash
    outside = (element_bytes + 1) * sbh + 2 * element_bytes * sbh
    head = (element_bytes + 12) * s * b * V
    if checkpointing:
        # Each block keeps its input. The head's transient comes first in backward and is gone
        # before the first block is recomputed beside the logits, so the peak is the larger one.
        return L * element_bytes * sbh + outside + max(head, element_bytes * s * b * V + layer)
    return L * layer + outside + head


def measure_cpu_adam(slice_params: int = CPU_ADAM_SLICE, repeats: int = 7) -> float:
    """Nanoseconds a parameter for one AdamW step on this machine's CPU (median of ``repeats``).

    torch's fused CPU AdamW on a 16M-parameter fp32 slice, scaled linearly by the caller: the step
    streams parameters, gradients and both moments through memory once, so its time grows with
    their count. DeepSpeedCPUAdam, which the offloaded run uses, is JIT-compiled on first use
    (minutes), too slow for a plan that answers in seconds; benchmarks/bench_plan_cpu.py compares
    the prediction with full-size steps of both.
    """
    p = torch.zeros(slice_params, requires_grad=True)
    p.grad = torch.randn(slice_params)
    opt = torch.optim.AdamW([p], lr=1e-4, weight_decay=0.1, fused=True)
    opt.step()  # first step allocates the moments
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / slice_params * 1e9


def flops_per_token(cfg: GPTConfig, params: int, seq: int) -> float:
    """Training FLOPs a token, forward and backward (PaLM appendix B, as GPT.flops_per_token)."""
    return 6 * params + 12 * cfg.n_layer * cfg.n_embd * seq


@dataclass(frozen=True)
class Hardware:
    gpu: GPU
    mfu: float
    reserve_gib: float
    host_memory_gib: float
    cpu_adam_ns_per_param: float


def estimate(cfg: GPTConfig, params: int, largest_layer: int, hw: Hardware, *, stage: int, offload: Offload,
             checkpointing: bool, micro_batch: int, sequences_per_step: int, token_budget: int,
             zero_section: dict, deepspeed_file: str) -> Estimate:
    s = cfg.block_size
    grad_accum = sequences_per_step // micro_batch
    states_gpu, states_host = model_state_bytes(stage, offload, params, largest_layer)
    acts = activation_bytes(cfg, micro_batch, s, 2, checkpointing, flash=True)
    buffers = bucket_bytes(stage, zero_section)
    reserve = int(hw.reserve_gib * GIB)
    peak = states_gpu + acts + buffers + reserve

    tokens_per_step = sequences_per_step * s
    hw_flops = flops_per_token(cfg, params, s) * (4 / 3 if checkpointing else 1)
    compute_s = tokens_per_step * hw_flops / (hw.mfu * hw.gpu.bf16_tflops * 1e12)
    per_micro = per_step = 0
    if offload != "none":
        per_micro += 2 * params  # bf16 gradients to the CPU after each backward
        if offload == "optimizer+params":
            per_micro += 2 * params * (3 if checkpointing else 2)  # bf16 weights in for forward, recompute, backward
        else:
            per_step += 4 * params  # updated fp32 partition back to the GPU
    transfer_s = (grad_accum * per_micro + per_step) / (hw.gpu.pcie_gbs * 1e9)
    cpu_adam_s = params * hw.cpu_adam_ns_per_param * 1e-9 if offload != "none" else 0.0
    step_s = compute_s + transfer_s + cpu_adam_s
    tokens_per_s = tokens_per_step / step_s

    gpu_short = peak - hw.gpu.memory_bytes
    host_short = states_host - hw.host_memory_gib * GIB
    why_not, short = None, 0.0
    if gpu_short > 0:
        why_not, short = f"needs {peak / GIB:.1f} GiB of the GPU's {hw.gpu.memory_gib:.1f}", gpu_short / GIB
    elif host_short > 0:
        why_not = f"needs {states_host / GIB:.1f} GiB of host memory, {hw.host_memory_gib:.1f} available"
        short = host_short / GIB
    return Estimate(
        zero_stage=stage, offload=offload, gradient_checkpointing=checkpointing, micro_batch=micro_batch,
        grad_accum=grad_accum, deepspeed_file=deepspeed_file,
        model_states_gib=states_gpu / GIB, activations_gib=acts / GIB, buffers_gib=buffers / GIB,
        reserve_gib=hw.reserve_gib, peak_gib=peak / GIB, host_gib=states_host / GIB,
        fits=why_not is None, short_by_gib=short, why_not=why_not,
        compute_s=compute_s, transfer_s=transfer_s, cpu_adam_s=cpu_adam_s, step_s=step_s,
        tokens_per_s=tokens_per_s, days_to_budget=token_budget / tokens_per_s / 86_400,
    )


def bucket_bytes(stage: int, zero: dict) -> int:
    """bf16 gradient buckets ZeRO allocates on the GPU: one reduce bucket (two with overlap_comm)
    for stages 1-2 with contiguous gradients; at stage 3 also the parameter prefetch bucket."""
    if stage == 0:
        return 0
    reduce = int(float(zero.get("reduce_bucket_size", 5e8))) * 2
    if stage < 3:
        return reduce * (2 if zero.get("overlap_comm") else 1) if zero.get("contiguous_gradients", True) else reduce
    return reduce + int(float(zero.get("stage3_prefetch_bucket_size", 5e7))) * 2


def zero_section(cfg: TrainConfig) -> tuple[dict, str]:
    """The ZeRO section training would use (the preset's file, its overrides) and the file's name."""
    from services.trainer.train import deepspeed_config

    name = cfg.deepspeed_config.name if cfg.deepspeed_config else f"{DEEPSPEED_BY_PRESET[cfg.preset]}.json"
    overrides = [f"--{k.replace('_', '-')} {v}" for k in ("zero_stage", "offload") if (v := getattr(cfg, k)) is not None]
    return deepspeed_config(cfg, "cuda", "bf16")["zero_optimization"], " ".join([name, *overrides])


def offload_of(zero: dict) -> Offload:
    def on(section: str) -> bool:
        return isinstance(zero.get(section), dict) and zero[section].get("device", "none") != "none"
    return "optimizer+params" if on("offload_param") else "optimizer" if on("offload_optimizer") else "none"


def make_plan(cfg: TrainConfig, gpu: GPU, *, mfu: float = DEFAULT_MFU, reserve_gib: float = DEFAULT_RESERVE_GIB,
              host_memory_gib: float | None = None, cpu_adam_ns_per_param: float | None = None,
              vocab_size: int = SEED_VOCAB) -> Plan:
    """The asked configuration (the train settings) and every candidate, ranked; one GPU."""
    import psutil

    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed's logger binds stdout at import; keep --json clean
        import deepspeed  # noqa: F401
    if not 0 < mfu <= 1:
        raise InvalidInput(f"--mfu must be in (0, 1], not {mfu}")
    model_cfg, params, largest = model_shape(cfg.preset, vocab_size, cfg.block_size)
    source = "given (--cpu-adam-ns)"
    if cpu_adam_ns_per_param is None:
        cpu_adam_ns_per_param = measure_cpu_adam()
        source = (f"measured here: torch fused AdamW, {CPU_ADAM_SLICE:,}-parameter fp32 slice, "
                  f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}, scaled linearly")
    hw = Hardware(gpu, mfu, reserve_gib, host_memory_gib or psutil.virtual_memory().total / GIB,
                  cpu_adam_ns_per_param)
    sequences = cfg.micro_batch * cfg.grad_accum
    budget = cfg.max_steps * sequences * model_cfg.block_size
    common = {"sequences_per_step": sequences, "token_budget": budget}

    zero, file = zero_section(cfg)
    checkpointing = cfg.gradient_checkpointing
    if checkpointing is None:  # the trainer's default (train.Trainer): on for the two large presets
        checkpointing = cfg.preset in ("base", "large")
    asked = estimate(model_cfg, params, largest, hw, stage=zero["stage"], offload=offload_of(zero),
                     checkpointing=checkpointing, micro_batch=cfg.micro_batch, zero_section=zero,
                     deepspeed_file=file, **common)

    candidates = []
    micro_batches = [m for m in (1, 2, 4, 8, 16, 32, 64) if m <= sequences and sequences % m == 0]
    for stage, offload, name in CANDIDATES:
        section, _ = zero_section(cfg.model_copy(update={  # the candidate's own file, as its options select
            "deepspeed_config": CONFIG_DIR / "deepspeed" / f"{name}.json", "zero_stage": stage, "offload": offload}))
        for ckpt in (False, True):
            for mb in micro_batches:
                candidates.append(estimate(model_cfg, params, largest, hw, stage=stage, offload=offload,
                                           checkpointing=ckpt, micro_batch=mb, zero_section=section,
                                           deepspeed_file=f"{name}.json", **common))
    # Fastest first; among equals the simpler engine, then the larger micro-batch (the plan holds
    # MFU constant, where in practice larger matrix products run closer to peak).
    fitting = sorted((c for c in candidates if c.fits), key=lambda c: (
        -round(c.tokens_per_s, 6), OFFLOAD_ORDER[c.offload], c.zero_stage, c.gradient_checkpointing, -c.micro_batch))
    return Plan(
        preset=cfg.preset, params=params, largest_layer_params=largest, n_layer=model_cfg.n_layer,
        n_embd=model_cfg.n_embd, n_head=model_cfg.n_head, block_size=model_cfg.block_size,
        sequences_per_step=sequences, tokens_per_step=sequences * model_cfg.block_size, token_budget=budget,
        assumptions=Assumptions(
            gpu=gpu.name, gpu_memory_gib=gpu.memory_gib, gpu_bf16_tflops=gpu.bf16_tflops, pcie_gbs=gpu.pcie_gbs,
            mfu=mfu, reserve_gib=reserve_gib, host_memory_gib=hw.host_memory_gib,
            cpu_adam_ns_per_param=cpu_adam_ns_per_param, cpu_adam_source=source, vocab_size=vocab_size),
        asked=asked, ranked=fitting, fastest=fitting[0] if fitting else None,
        rejected=len(candidates) - len(fitting),
    )


def describe(e: Estimate) -> str:
    offload = {"none": "no offload", "optimizer": "optimizer offloaded", "optimizer+params": "optimizer+params offloaded"}
    return (f"ZeRO {e.zero_stage}, {offload[e.offload]}, checkpointing {'on' if e.gradient_checkpointing else 'off'}, "
            f"micro-batch {e.micro_batch} x {e.grad_accum}")


def print_plan(plan: Plan, top: int) -> None:
    """The ranked table, the asked configuration and the fastest, for a terminal."""
    from rich.console import Console
    from rich.table import Table

    a = plan.assumptions
    console = Console()
    if not console.is_terminal:
        console.width = 150  # a pipe or a file gets every column, not an 80-column squeeze
    console.print(
        f"[bold]{plan.preset}[/]: {plan.params:,} parameters ({plan.n_layer} layers, width {plan.n_embd}, "
        f"context {plan.block_size}, vocabulary {a.vocab_size:,}); {plan.tokens_per_step:,} tokens a step, "
        f"budget {plan.token_budget:,} tokens\n"
        f"[bold]{a.gpu}[/]: {a.gpu_memory_gib:.1f} GiB, {a.gpu_bf16_tflops:g} bf16 TFLOP/s at MFU {a.mfu:.0%}, "
        f"PCIe {a.pcie_gbs:g} GB/s, reserve {a.reserve_gib:g} GiB; host memory {a.host_memory_gib:.1f} GiB\n"
        f"CPU Adam {a.cpu_adam_ns_per_param:.2f} ns/parameter ({a.cpu_adam_source})")
    # One row for each engine set-up (stage, offload, checkpointing): its fastest fitting micro-batch.
    rows, seen = [], set()
    for e in plan.ranked:
        if (key := (e.zero_stage, e.offload, e.gradient_checkpointing)) not in seen:
            seen.add(key)
            rows.append(e)
    table = Table(title=f"{len(plan.ranked)} of {len(plan.ranked) + plan.rejected} configurations fit; "
                        "fastest first, the best micro-batch of each set-up (--json lists all)")
    for col in ("#", "ZeRO", "offload", "ckpt", "micro x accum", "states GiB", "activ. GiB", "buffers GiB",
                "peak GiB", "host GiB", "s/step", "tokens/s", "days"):
        table.add_column(col, justify="left" if col in ("offload", "ckpt") else "right")
    for i, e in enumerate(rows[:top], 1):
        table.add_row(str(i), str(e.zero_stage), e.offload, "on" if e.gradient_checkpointing else "off",
                      f"{e.micro_batch} x {e.grad_accum}", f"{e.model_states_gib:.2f}", f"{e.activations_gib:.2f}",
                      f"{e.buffers_gib:.2f}", f"{e.peak_gib:.2f}", f"{e.host_gib:.1f}", f"{e.step_s:.2f}",
                      f"{e.tokens_per_s:,.0f}", f"{e.days_to_budget:.1f}")
    console.print(table)
    asked = plan.asked
    if asked.fits:
        console.print(f"asked ({asked.deepspeed_file}): {describe(asked)}: peak {asked.peak_gib:.2f} GiB, "
                      f"{asked.tokens_per_s:,.0f} tokens/s, {asked.days_to_budget:.1f} days")
    else:
        console.print(f"[red]asked ({asked.deepspeed_file}): {describe(asked)} does not fit: {asked.why_not}, "
                      f"short by {asked.short_by_gib:.2f} GiB[/]")
    if plan.fastest is None:
        console.print("[red]no configuration fits this GPU and host[/]")
        return
    f = plan.fastest
    saved = asked.days_to_budget - f.days_to_budget
    console.print(f"[bold green]fastest[/]: {describe(f)}: {f.tokens_per_s:,.0f} tokens/s, "
                  f"{f.days_to_budget:.1f} days"
                  + (f", {saved:.1f} days sooner than asked" if asked.fits and saved > 0.05 else "")
                  + f"\n  als-lm train --preset {plan.preset} {f.options}")
