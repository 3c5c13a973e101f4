"""Checks the plan's model of memory and of the CPU Adam step on this machine's CPU (issue 16).

1. **Memory of one training step.** For each case a fresh process builds the real ``Trainer``
   (DeepSpeed engine, ZeRO 0, CPU, random tokens over the seed's 16,384 vocabulary) in fp32 or in
   bf16 (the GPU's path: ``FP16_UnfusedOptimizer`` with fp32 master weights), with dropout 0.1
   (PyTorch's math attention kernel on the CPU) or 0 (its flash kernel), with one micro-batch a
   step or two (accumulation: the second finds the first's gradients), runs one warm-up step,
   resets the kernel's peak-RSS counter (``/proc/self/clear_refs``) and runs a second step.
   Measured = peak RSS of that step (VmHWM) minus the RSS before the model was built (DeepSpeed
   imported, process group up). Predicted = ``plan.training_memory`` for the CPU (its dropout
   masks and math kernel): the larger of backward (states + activations, less the gradients not
   allocated yet), ZeRO 0's gradient all-reduce (states + a flat copy of the gradients + the
   logits) and the optimizer step (states + its transient + the logits), with torch AdamW's
   single-tensor loop, its default on the CPU. glibc's mmap threshold is fixed at
   64 KiB in the child (``MALLOC_MMAP_THRESHOLD_``) so freed tensors leave RSS at once instead of
   staying in the heap, which would make RSS a high-water mark of every earlier allocation.
2. **The CPU Adam step.** Predicted = ``plan.measure_cpu_adam`` (torch's fused AdamW on a
   16M-parameter slice, the plan's own measurement) x the parameter count; measured = a full-size
   step on one flat fp32 buffer (how ZeRO-Offload holds the partition) with torch's fused AdamW
   and, where it is built or ``--build-cpu-adam`` is given, DeepSpeedCPUAdam, the optimizer the
   offloaded run uses. Medians of ``--repeats`` steps after one warm-up, interleaved.

Goal: every memory prediction within 10 % of its measurement (issue 26), the Adam step within 25 %.

    .venv/bin/python benchmarks/bench_plan_cpu.py --out docs/bench/plan-cpu.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOCAB = 16_384
MIB = 2**20
CASES = [  # preset, micro-batch, context, gradient checkpointing, precision, dropout, accumulation
    ("tiny", 8, 256, False, "fp32", 0.1, 1),
    ("mini", 8, 256, False, "fp32", 0.1, 1),
    ("mini", 8, 256, True, "fp32", 0.1, 1),
    ("small", 4, 512, False, "fp32", 0.1, 1),
    ("small", 4, 512, True, "fp32", 0.1, 1),
    ("small", 4, 512, True, "fp32", 0.1, 2),
    ("mini", 8, 256, False, "fp32", 0.0, 1),
    ("mini", 8, 256, False, "bf16", 0.1, 1),
    ("mini", 8, 256, False, "bf16", 0.0, 1),
    ("mini", 8, 256, True, "bf16", 0.0, 1),
    ("base", 1, 256, False, "fp32", 0.1, 1),
]


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def measure_step(preset: str, micro_batch: int, block_size: int, checkpointing: bool, precision: str,
                 dropout: float, grad_accum: int = 1) -> dict:
    """In this (fresh) process: RSS before the model, peak RSS of the second step."""
    import torch

    from services.trainer import plan
    from services.trainer.settings import TrainConfig
    from services.trainer.train import Trainer, init_distributed

    torch.manual_seed(0)
    init_distributed("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for shard in ("train.bin", "val.bin"):
            rng.integers(0, VOCAB, 50_000, dtype=np.uint16).tofile(Path(tmp) / shard)
        def trainer_for(preset, micro_batch, block_size, checkpointing, run, grad_accum=1):
            cfg = TrainConfig(preset=preset, device="cpu", precision=precision, micro_batch=micro_batch,
                              grad_accum=grad_accum,
                              block_size=block_size, gradient_checkpointing=checkpointing, max_steps=100,
                              warmup_steps=1, dropout=dropout)
            return Trainer(cfg, 1337, Path(tmp) / "train.bin", Path(tmp) / "val.bin", VOCAB, Path(tmp) / run)

        def step(trainer):  # the trainer's loop: the logits stay referenced until the next forward
            for _ in range(trainer.cfg.grad_accum):
                x, y = trainer.batches.next()
                _, loss = trainer.engine(x, y)
                trainer.engine.backward(loss)
                trainer.engine.step()

        # A throw-away run first: the kernels' code pages and the runtime's one-time buffers are
        # then resident before the baseline, so the difference is this model's memory alone.
        warm = trainer_for("tiny", 1, 16, checkpointing, "warm")
        step(warm), step(warm)
        del warm
        gc.collect()
        before = status_kib("VmRSS") * 1024
        trainer = trainer_for(preset, micro_batch, block_size, checkpointing, "run", grad_accum)
        step(trainer)
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        t0 = time.perf_counter()
        step(trainer)
        seconds = time.perf_counter() - t0
        peak = status_kib("VmHWM") * 1024
        model_cfg, params, largest = plan.model_shape(preset, VOCAB, block_size, dropout)
        m = plan.training_memory(model_cfg, params, largest, stage=0, offload="none", checkpointing=checkpointing,
                                 micro_batch=micro_batch, grad_accum=grad_accum, precision=precision, device="cpu",
                                 foreach=False)
    return {"preset": preset, "params": params, "micro_batch": micro_batch, "grad_accum": grad_accum,
            "block_size": block_size,
            "checkpointing": checkpointing, "precision": precision, "dropout": dropout,
            "measured_mib": (peak - before) / MIB, "predicted_mib": m.peak / MIB, "predicted_peak_at": m.peak_at,
            "predicted_states_mib": m.states / MIB, "predicted_activations_mib": m.activations / MIB,
            "predicted_step_mib": m.step / MIB, "predicted_allreduce_mib": m.allreduce / MIB, "step_s": seconds}


def adam_steps(params: int, repeats: int, deepspeed_adam: bool) -> dict:
    """Median seconds of full-size steps: torch fused AdamW and (optionally) DeepSpeedCPUAdam, interleaved."""
    import torch

    from services.trainer import plan

    slice_ns = plan.measure_cpu_adam()
    buffers = {}
    p = torch.zeros(params, requires_grad=True)
    p.grad = torch.randn(params) * 1e-3
    buffers["torch_fused_adamw"] = torch.optim.AdamW([p], lr=1e-4, weight_decay=0.1, fused=True)
    if deepspeed_adam:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        q = torch.zeros(params, requires_grad=True)
        q.grad = p.grad
        buffers["deepspeed_cpu_adam"] = DeepSpeedCPUAdam([q], lr=1e-4, weight_decay=0.1, adamw_mode=True)
    times = {name: [] for name in buffers}
    for opt in buffers.values():
        opt.step()  # allocates the moments
    for _ in range(repeats):
        for name, opt in buffers.items():
            t0 = time.perf_counter()
            opt.step()
            times[name].append(time.perf_counter() - t0)
    predicted = slice_ns * params * 1e-9
    return {"params": params, "slice_ns_per_param": slice_ns, "predicted_s": predicted,
            **{f"{name}_s": statistics.median(t) for name, t in times.items()},
            **{f"{name}_vs_predicted": statistics.median(t) / predicted for name, t in times.items()},
            "rounds": times}


def cpu_adam_built() -> bool:
    """DeepSpeedCPUAdam's JIT build is cached (torch's default extensions directory)."""
    root = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "torch_extensions"))
    return any(root.glob("*/cpu_adam/cpu_adam.so"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--adam-params", default="27828224,320137216",
                        help="parameter counts for the Adam check (small and base with the 16K vocabulary)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--build-cpu-adam", action="store_true", help="JIT-build DeepSpeedCPUAdam if needed (minutes)")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_step(*json.loads(args.child))))
        return

    import torch

    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "loadavg_start": Path("/proc/loadavg").read_text().split()[:3], "memory": [], "adam": []}
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    for case in [] if args.skip_memory else CASES:
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode:
            sys.exit(f"memory case {case} failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["error"] = row["predicted_mib"] / row["measured_mib"] - 1
        report["memory"].append(row)
        print(f"{row['preset']:>5} {row['precision']} dropout {row['dropout']} mb {row['micro_batch']}x{row['grad_accum']} "
              f"ctx {row['block_size']} ckpt {row['checkpointing']!s:5}: "
              f"measured {row['measured_mib']:7.1f} MiB, predicted {row['predicted_mib']:7.1f} MiB "
              f"({row['error']:+.0%})", flush=True)

    ds_adam = args.build_cpu_adam or cpu_adam_built()
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    for n in (int(x) for x in args.adam_params.split(",") if x):
        row = adam_steps(n, args.repeats, ds_adam)
        report["adam"].append(row)
        print(f"Adam {n:,} params: predicted {row['predicted_s']:.3f} s; "
              + "; ".join(f"{k[:-2]} {v:.3f} s" for k, v in row.items() if k.endswith("_s") and k != "predicted_s"),
              flush=True)
    report["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
