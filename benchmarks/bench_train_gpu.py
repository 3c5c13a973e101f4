"""GPU training benchmark and the plan's acceptance test (issues 5 and 16), in one call of <= 8 minutes.

Each scenario runs in its own process (so its peak memory is its own), bf16, random tokens over the
seed's 16,384-token vocabulary, and prints the plan's prediction (`als-lm train --plan` for this
GPU, with the CPU Adam step measured on this machine) beside the measurement:

- ``base-no-offload``: base (~320M), ZeRO 0, nothing offloaded, no checkpointing, micro-batch 4 x 8
  (the plan's fastest set-up on a 12 GB card, and the MFU figure: goal >= 50 % on an H100);
- ``base-zero2-offload``: base with ZeRO-2 and DeepSpeedCPUAdam optimizer offload, checkpointing
  (the seed's configuration, the old default): what offloading costs;
- ``large-zero2-offload``: large (~1.65B), ZeRO-2 with optimizer offload (the new default), a few steps;
- ``large-zero3-offload``: large with ZeRO-3, parameters and optimizer offloaded (the seed's), a few steps.

Measured: tokens/s over the timed steps after two warm-up steps, MFU both as the trainer reports it
(model FLOPs) and as the plan states it (hardware FLOPs: a forward pass more with checkpointing),
and peak GPU memory from the caching allocator (allocated, and reserved), beside the plan's
states + activations + buffers (its peak less the reserve for the CUDA context). The first
offloaded scenario JIT-builds DeepSpeedCPUAdam (cached for the next). A scenario that runs past
``--budget`` seconds (450 by default) is stopped and reported, so the call stays under 8 minutes.

    .venv/bin/python benchmarks/bench_train_gpu.py --out docs/bench/trainer-gpu.json
    .venv/bin/python benchmarks/bench_train_gpu.py --scenario base-no-offload --steps 20
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.trainer import plan
from services.trainer.gpus import GIB, GPU, for_device
from services.trainer.settings import TrainConfig

VOCAB = 16384
# name: (settings, timed steps) -- the large ones run a few short steps
SCENARIOS = {
    "base-no-offload": ({"preset": "base", "zero_stage": 0, "offload": "none", "gradient_checkpointing": False,
                         "micro_batch": 4, "grad_accum": 8}, None),
    "base-zero2-offload": ({"preset": "base", "zero_stage": 2, "offload": "optimizer", "gradient_checkpointing": True,
                            "micro_batch": 4, "grad_accum": 8}, None),
    "large-zero2-offload": ({"preset": "large", "zero_stage": 2, "offload": "optimizer",
                             "gradient_checkpointing": False, "micro_batch": 2, "grad_accum": 4}, 3),
    "large-zero3-offload": ({"preset": "large", "zero_stage": 3, "offload": "optimizer+params",
                             "gradient_checkpointing": True, "micro_batch": 4, "grad_accum": 2}, 3),
}


def this_gpu() -> GPU:
    props = torch.cuda.get_device_properties(0)
    name = torch.cuda.get_device_name()
    gpu = for_device(name, props.total_memory)
    if gpu is None:
        sys.exit(f"bench_train_gpu: {name} is not in services/trainer/gpus.py; add its bf16 peak there")
    return gpu


def run_scenario(name: str, steps: int | None) -> dict:
    from services.trainer.train import Trainer

    settings, short = SCENARIOS[name]
    steps = short if steps is None and short else steps or 10
    gpu = this_gpu()
    cfg = TrainConfig(**settings, device="cuda", precision="bf16", max_steps=10_000, warmup_steps=10)
    predicted = plan.make_plan(cfg, gpu).asked
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for shard, n in (("train.bin", 4_000_000), ("val.bin", 200_000)):
            rng.integers(0, VOCAB, n, dtype=np.uint16).tofile(Path(tmp) / shard)
        trainer = Trainer(cfg, 1337, Path(tmp) / "train.bin", Path(tmp) / "val.bin", VOCAB, Path(tmp) / "run")
        engine = trainer.engine

        def step() -> None:
            for _ in range(cfg.grad_accum):
                x, y = (t.to(engine.device) for t in trainer.batches.next())
                _, loss = engine(x, y)
                engine.backward(loss)
                engine.step()

        for _ in range(2):  # warm-up: kernels, allocator, offload buffers
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        tokens_per_s = steps * trainer.tokens_per_step / (time.perf_counter() - t0)
        hw_flops = trainer.flops_per_token * (4 / 3 if settings["gradient_checkpointing"] else 1)
        return {
            "scenario": name, "device": gpu.name, "params": trainer.num_params, "settings": settings,
            "steps": steps, "block_size": trainer.model_config.block_size,
            "tokens_per_s": tokens_per_s, "predicted_tokens_per_s": predicted.tokens_per_s,
            "mfu": trainer.flops_per_token * tokens_per_s / (gpu.bf16_tflops * 1e12),
            "hardware_mfu": hw_flops * tokens_per_s / (gpu.bf16_tflops * 1e12), "predicted_hardware_mfu": plan.DEFAULT_MFU,
            "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
            "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB,
            "predicted_gib": predicted.peak_gib - predicted.reserve_gib,
            "predicted": predicted.model_dump(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=list(SCENARIOS), help="run one scenario in this process")
    parser.add_argument("--steps", type=int, help="timed optimizer steps [default: 10; 3 for large]")
    parser.add_argument("--budget", type=int, default=450, help="seconds for the whole call; a scenario still "
                        "running at the end is stopped and reported")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit(f"bench_train_gpu: torch {torch.__version__} sees no CUDA device here; "
                 "the GPU figures stay 'not measured' (run it on a GPU machine)")
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args.steps)))
        return
    deadline = time.monotonic() + args.budget
    t0 = time.perf_counter()
    from deepspeed.ops.op_builder import CPUAdamBuilder

    CPUAdamBuilder().load()  # JIT-built once here (cached), not inside a timed scenario
    print(f"DeepSpeedCPUAdam ready in {time.perf_counter() - t0:.0f} s", flush=True)
    results = []
    for name in SCENARIOS:
        cmd = [sys.executable, __file__, "--scenario", name, *(["--steps", str(args.steps)] if args.steps else [])]
        left = deadline - time.monotonic()
        try:
            if left < 20:
                raise subprocess.TimeoutExpired(cmd, 0)
            done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=left)
            lines = done.stdout.strip().splitlines()
            row = (json.loads(lines[-1]) if done.returncode == 0 and lines
                   else {"scenario": name, "error": done.stderr[-2000:]})
        except subprocess.TimeoutExpired:
            row = {"scenario": name, "error": f"not finished within the {args.budget} s budget"}
        results.append(row)
        if "error" in row:
            print(f"{name}: FAILED {row['error'][-400:]}", flush=True)
        else:
            print(f"{name}: {row['tokens_per_s']:,.0f} tokens/s (plan {row['predicted_tokens_per_s']:,.0f}); "
                  f"hardware MFU {row['hardware_mfu']:.1%} (plan {row['predicted_hardware_mfu']:.0%}); "
                  f"peak allocated {row['peak_allocated_gib']:.2f} GiB, reserved {row['peak_reserved_gib']:.2f} "
                  f"(plan {row['predicted_gib']:.2f} + {row['predicted']['reserve_gib']:g} reserve)", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
