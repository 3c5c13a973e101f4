"""`als-lm train --plan`: will a configuration fit a GPU, how fast will it train, and which is fastest.

Arithmetic and one short measurement, never a training step, so it answers in seconds on a
machine without a GPU:

- **model states** (parameters, gradients, optimizer): at ZeRO 1-3 DeepSpeed's own estimators,
  ``estimate_zero2_model_states_mem_needs`` and ``estimate_zero3_model_states_mem_needs`` (bf16
  weights and gradients, fp32 master weights, gradients and Adam moments). DeepSpeed has no
  estimator for stage 0, so its bytes are read from DeepSpeed 0.19.8's code: bf16 with torch's
  AdamW goes through ``FP16_UnfusedOptimizer`` (engine.py ``_do_optimizer_sanity_check`` answers
  ``DDP_BFLOAT16``), which keeps bf16 weights and gradients and fp32 master weights and moments,
  16 bytes a parameter, through forward and backward;
- **the optimizer step** adds its own transient on the GPU: at stage 0 the fp32 copy of every
  gradient (``FP16_UnfusedOptimizer.step``), and at every stage without offload the temporary of
  torch's foreach AdamW (``_foreach_sqrt`` of the second moments, fp32, all parameters at once;
  foreach is torch's default on CUDA). At ZeRO 0 the all-reduce that ends a step's last
  backward adds a copy of the gradients: DeepSpeed's engine flattens them, on one GPU too. The
  peak is the largest of backward, the all-reduce and the step, the last two with only the logits
  still held. At ZeRO 0 with one micro-batch a step the gradients are not there yet at
  backward's peak: the engine frees them after every step and backward allocates them as it goes;
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
  measured now on a slice of parameters and scaled linearly (``measure_cpu_adam``). The updated
  weights come back as bf16 (2 bytes a parameter): stage 2 copies the fp32 partition into a bf16
  host buffer first, stage 3 converts on the host side of the copy. Offload costs
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
from services.trainer.model import GPT, PRESETS, Block, GPTConfig
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
    model_states_gib: float  # through forward and backward
    activations_gib: float
    step_gib: float  # what the optimizer step adds to the model states (fp32 gradients, AdamW temporaries)
    peak_at: Literal["backward", "gradient all-reduce", "optimizer step"]
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
    custom_shape: bool  # n_layer, n_head or n_embd given instead of the preset's
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


def model_shape(preset: str, vocab_size: int, block_size: int | None, dropout: float = 0.1,
                **shape: int | None) -> tuple[GPTConfig, int, int]:
    """(config, parameters, largest module's own parameters), counted on the meta device (no memory).

    ``shape`` (``n_layer``, ``n_head``, ``n_embd``) overrides the preset's where given.
    """
    given = {k: v for k, v in {**shape, "block_size": block_size}.items() if v is not None}
    try:
        cfg = GPTConfig(**{**PRESETS[preset], **given}, vocab_size=vocab_size, dropout=dropout)
    except ValueError as err:
        raise InvalidInput(f"model shape: {err}") from None
    with torch.device("meta"):
        model = GPT(cfg)
    largest = max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    return cfg, model.num_params(), largest  # as DeepSpeed's *_all_live estimators count it


def model_state_bytes(stage: int, offload: Offload, params: int, largest_layer: int,
                      precision: str = "bf16") -> tuple[int, int]:
    """(GPU bytes, host bytes) for parameters, gradients and optimizer states on one GPU, through
    forward and backward.

    ZeRO 0 keeps 16 bytes a parameter either way: bf16 weights and gradients with fp32 master
    weights and moments (``FP16_UnfusedOptimizer``), or with ``precision="fp32"`` (the CPU path,
    no master copy) fp32 weights, gradients and moments. Its host figure is DeepSpeed's for stage 2
    without offload: the fp32 model built on the host before it moves.
    """
    if precision == "fp32" and (stage or offload != "none"):
        raise ValueError("the fp32 model covers ZeRO 0 without offload only")
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    if stage == 0:
        if offload != "none":
            raise ValueError("ZeRO 0 offloads nothing")
        return 16 * params, 0 if precision == "fp32" else estimate_zero2_model_states_mem_needs(
            params, cpu_offload=False)[0]

    if stage < 3:
        cpu, gpu = estimate_zero2_model_states_mem_needs(params, cpu_offload=offload != "none")
        return gpu, cpu
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
        params, largest_layer, cpu_offload=offload != "none", cpu_offload_params=offload == "optimizer+params")
    return gpu, cpu


def optimizer_step_bytes(stage: int, offload: Offload, params: int, largest_layer: int,
                         precision: str = "bf16", foreach: bool = True) -> int:
    """Device bytes the optimizer step adds to ``model_state_bytes`` while it runs.

    Offloaded, the step runs on the CPU: nothing. Otherwise torch's AdamW: with ``foreach`` (its
    default on CUDA) ``_foreach_sqrt`` of the second moments is one fp32 temporary for every
    parameter at once; the single-tensor loop (its default on the CPU) has its temporaries (the
    square root and its quotient) for one tensor at a time. In bf16 at ZeRO 0
    ``FP16_UnfusedOptimizer.step`` first gives every fp32 master weight an fp32 copy of its
    gradient (DeepSpeed's stage 1-3 estimates hold that copy already; fp32 has no master copy).
    """
    if offload != "none":
        return 0
    copies = 4 * params if stage == 0 and precision == "bf16" else 0
    return copies + (4 * params if foreach else 8 * largest_layer)


def allreduce_bytes(stage: int, params: int, largest_layer: int, precision: str = "bf16") -> int:
    """Device bytes ZeRO 0's gradient all-reduce adds at the end of a step's last backward.

    DeepSpeed's engine flattens the gradients into buckets of ``MEMORY_OPT_ALLREDUCE_SIZE`` (500M)
    elements to all-reduce them (``buffered_allreduce_fallback``), on one GPU too: a copy of
    every gradient, one bucket at a time (a bucket closes once it holds more, so it is at most one
    tensor over). ZeRO 1-3 reduce through their own buckets (``bucket_bytes``).
    """
    if stage:
        return 0
    from deepspeed.runtime.engine import MEMORY_OPT_ALLREDUCE_SIZE

    return (2 if precision == "bf16" else 4) * min(params, MEMORY_OPT_ALLREDUCE_SIZE + largest_layer)


@dataclass(frozen=True)
class Activations:
    """One micro-batch's activation bytes at the moments of backward that can be its peak."""
    per_block: int  # what each block keeps for backward (its input alone with checkpointing)
    outside: int  # the embedding's dropout mask, the final LayerNorm's input and output
    head: int  # the head's transient, first in backward: logits, fp32 log-softmax, their gradients
    logits: int  # held by the training loop until the next forward
    recompute: int  # one block's activations, recomputed in backward with checkpointing
    n_layer: int

    def at_head(self) -> int:
        return self.n_layer * self.per_block + self.outside + self.head

    def in_block(self, k: int) -> int:
        """While the k-th block from the input is back-propagated: its activations and its predecessors'."""
        return k * self.per_block + self.outside + self.logits + self.recompute

    @property
    def peak(self) -> int:
        return max(self.at_head(), self.in_block(self.n_layer))


def activations(cfg: GPTConfig, micro_batch: int, seq: int, element_bytes: int, checkpointing: bool,
                device: Literal["cuda", "cpu"] = "cuda") -> Activations:
    """Activation bytes of one micro-batch, counted tensor by tensor (Korthikanti et al. 2022, §4.1).

    Per block, with e bytes an element: the two LayerNorm inputs, the QKV input, the
    attention-projection input, the MLP input, the GELU input and output (4h each) = 13·e·s·b·h,
    and two residual-dropout masks. The attention kernel: on CUDA, and on the CPU without dropout
    (its flash kernel has none), a flash kernel keeps Q, K and V (views of the QKV output) and its
    fp32 log-sum-exp; its output is the projection's input, counted above (written in (b, s, a,
    h/a) order, so the model's transpose and ``contiguous`` copy nothing). With e = 2 and 1-byte
    masks that is Korthikanti's 34·s·b·h, the s² terms replaced by the log-sum-exp. On the CPU with
    dropout PyTorch's math kernel runs in fp32 (it upcasts bf16): fp32 copies of the scaled Q, K
    and of V, and the softmax output, the dropout's noise and its output, a·s²·b each. Dropout
    masks are 1 byte on CUDA (``native_dropout``'s bool mask); on the CPU ``at::dropout`` multiplies
    by a noise tensor of the input's dtype and keeps it (e bytes). Outside the blocks: the
    embedding's dropout mask (its output is the first block's input), the final LayerNorm's input
    and output, and at the head the logits (held by the caller through backward) with the fp32
    log-softmax output, its gradient and the gradient of the logits, 12 bytes an element more.
    With gradient checkpointing each block keeps its input, and one block is recomputed at a time
    after the head's transient has been freed.
    """
    b, s, a, V, e = micro_batch, seq, cfg.n_head, cfg.vocab_size, element_bytes
    sbh = s * b * cfg.n_embd
    dropout = cfg.dropout > 0
    mask = (1 if device == "cuda" else e) if dropout else 0
    if device == "cuda" or not dropout:
        attention = 3 * e * sbh + 4 * a * s * b
    else:
        attention = 3 * 4 * sbh + 3 * 4 * a * s * s * b
    layer = 13 * e * sbh + 2 * mask * sbh + attention
    return Activations(per_block=e * sbh if checkpointing else layer, outside=(mask + 2 * e) * sbh,
                       head=(e + 12) * s * b * V, logits=e * s * b * V, recompute=layer if checkpointing else 0,
                       n_layer=cfg.n_layer)


def block_params(cfg: GPTConfig) -> int:
    """One block's parameters, counted on the meta device."""
    with torch.device("meta"):
        return sum(p.numel() for p in Block(cfg).parameters())


@dataclass(frozen=True)
class Memory:
    """One micro-batch's training memory on the device, without buffers and reserve."""
    states: int  # held through forward and backward (gradients included)
    host: int
    activations: int  # the peak of forward and backward
    step: int  # what the optimizer step adds to the states
    allreduce: int  # what ZeRO 0's gradient all-reduce adds to the states
    backward: int  # the peak of forward and backward: states and activations, less gradients not there yet
    peak: int
    peak_at: Literal["backward", "gradient all-reduce", "optimizer step"]


def training_memory(cfg: GPTConfig, params: int, largest_layer: int, *, stage: int, offload: Offload,
                    checkpointing: bool, micro_batch: int, grad_accum: int, precision: str = "bf16",
                    device: Literal["cuda", "cpu"] = "cuda", foreach: bool = True) -> Memory:
    """The peak is the largest of backward (states and activations), the gradient all-reduce that
    ends it and the optimizer step (states, the transient, and the logits, which the training loop
    still references).

    At ZeRO 0 the engine frees every gradient after the optimizer step (``set_to_none``) and
    backward allocates them as it goes: with one micro-batch a step the head's transient comes
    before any gradient, and the k-th block from the input before the gradients of the first k.
    With accumulation the later micro-batches of a step find them all. DeepSpeed's stage 1-3
    estimates are taken as they are.
    """
    element = 2 if precision == "bf16" else 4
    states, host = model_state_bytes(stage, offload, params, largest_layer, precision)
    acts = activations(cfg, micro_batch, cfg.block_size, element, checkpointing, device)
    step = optimizer_step_bytes(stage, offload, params, largest_layer, precision, foreach)
    grads_pending = stage == 0 and grad_accum == 1
    grads, block_grads = (element * params, element * block_params(cfg)) if grads_pending else (0, 0)
    backward = max(states - grads + acts.at_head(),
                   *(states - k * block_grads + acts.in_block(k) for k in (1, cfg.n_layer)))
    reduce = allreduce_bytes(stage, params, largest_layer, precision)
    after = states + max(step, reduce) + acts.logits
    peak_at = "backward" if backward >= after else "optimizer step" if step >= reduce else "gradient all-reduce"
    return Memory(states, host, acts.peak, step, reduce, backward, max(backward, after), peak_at)


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
    memory = training_memory(cfg, params, largest_layer, stage=stage, offload=offload, checkpointing=checkpointing,
                             micro_batch=micro_batch, grad_accum=grad_accum)
    states_host = memory.host
    buffers = bucket_bytes(stage, zero_section)
    reserve = int(hw.reserve_gib * GIB)
    peak = memory.peak + buffers + reserve

    tokens_per_step = sequences_per_step * s
    hw_flops = flops_per_token(cfg, params, s) * (4 / 3 if checkpointing else 1)
    compute_s = tokens_per_step * hw_flops / (hw.mfu * hw.gpu.bf16_tflops * 1e12)
    per_micro = per_step = 0
    if offload != "none":
        per_micro += 2 * params  # bf16 gradients to the CPU after each backward
        if offload == "optimizer+params":
            per_micro += 2 * params * (3 if checkpointing else 2)  # bf16 weights in for forward, recompute, backward
        else:
            per_step += 2 * params  # updated weights back to the GPU, converted to bf16 on the host
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
        model_states_gib=memory.states / GIB, activations_gib=memory.activations / GIB, step_gib=memory.step / GIB,
        peak_at=memory.peak_at, buffers_gib=buffers / GIB,
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
              vocab_size: int = SEED_VOCAB, shape: dict[str, int | None] | None = None) -> Plan:
    """The asked configuration (the train settings) and every candidate, ranked; one GPU.

    ``shape`` (``n_layer``, ``n_head``, ``n_embd``) plans a model the presets do not have.
    """
    import psutil

    with contextlib.redirect_stdout(sys.stderr):  # DeepSpeed's logger binds stdout at import; keep --json clean
        import deepspeed  # noqa: F401
    if not 0 < mfu <= 1:
        raise InvalidInput(f"--mfu must be in (0, 1], not {mfu}")
    shape = {k: v for k, v in (shape or {}).items() if v is not None}
    model_cfg, params, largest = model_shape(cfg.preset, vocab_size, cfg.block_size, cfg.dropout, **shape)
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
    asked = estimate(model_cfg, params, largest, hw, stage=zero["stage"], offload=offload_of(zero),
                     checkpointing=cfg.checkpointing, micro_batch=cfg.micro_batch, zero_section=zero,
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
        preset=cfg.preset, custom_shape=bool(shape), params=params, largest_layer_params=largest, n_layer=model_cfg.n_layer,
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
        console.width = 170  # a pipe or a file gets every column, not an 80-column squeeze
    console.print(
        f"[bold]{'custom shape' if plan.custom_shape else plan.preset}[/]: {plan.params:,} parameters ({plan.n_layer} layers, width {plan.n_embd}, "
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
    for col in ("#", "ZeRO", "offload", "ckpt", "micro x accum", "states GiB", "activ. GiB", "step GiB",
                "buffers GiB", "peak GiB", "peak at", "host GiB", "s/step", "tokens/s", "days"):
        table.add_column(col, justify="left" if col in ("offload", "ckpt", "peak at") else "right")
    for i, e in enumerate(rows[:top], 1):
        table.add_row(str(i), str(e.zero_stage), e.offload, "on" if e.gradient_checkpointing else "off",
                      f"{e.micro_batch} x {e.grad_accum}", f"{e.model_states_gib:.2f}", f"{e.activations_gib:.2f}",
                      f"{e.step_gib:.2f}", f"{e.buffers_gib:.2f}", f"{e.peak_gib:.2f}",
                      e.peak_at.split()[-1], f"{e.host_gib:.1f}",
                      f"{e.step_s:.2f}", f"{e.tokens_per_s:,.0f}", f"{e.days_to_budget:.1f}")
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
                  + ("" if plan.custom_shape else f"\n  als-lm train --preset {plan.preset} {f.options}"))
