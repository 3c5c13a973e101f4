"""GPU training benchmarks (issue 5); each scenario runs in its own process so peak memory is its own.

- ``base-no-offload``: base (~320M) in bf16, ZeRO 0, no gradient checkpointing: tokens/s and MFU
  (goal >= 50 % on an H100);
- ``base-zero2-offload``: base with ZeRO-2 + DeepSpeedCPUAdam optimizer offload, gradient
  checkpointing, micro-batch 4: peak GPU memory (goal <= 11 GB, a 12 GB RTX 3060);
- ``large-zero3-offload``: large (~1.65B) with ZeRO-3 + parameter and optimizer offload: peak GPU
  memory (same goal).

Random token shards with a 16,384 vocabulary (throughput does not depend on the text).

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

from services.trainer.settings import TrainConfig
from services.trainer.train import Trainer

VOCAB = 16384
SCENARIOS = {
    "base-no-offload": {"preset": "base", "zero_stage": 0, "offload": "none", "gradient_checkpointing": False},
    "base-zero2-offload": {"preset": "base", "zero_stage": 2, "offload": "optimizer", "gradient_checkpointing": True},
    "large-zero3-offload": {"preset": "large", "zero_stage": 3, "offload": "optimizer+params",
                            "gradient_checkpointing": True},
}


def run_scenario(name: str, steps: int, micro_batch: int, grad_accum: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for shard, n in (("train.bin", 4_000_000), ("val.bin", 200_000)):
            rng.integers(0, VOCAB, n, dtype=np.uint16).tofile(Path(tmp) / shard)
        cfg = TrainConfig(**SCENARIOS[name], device="cuda", precision="bf16", micro_batch=micro_batch,
                          grad_accum=grad_accum, max_steps=10_000, warmup_steps=10)
        trainer = Trainer(cfg, 1337, Path(tmp) / "train.bin", Path(tmp) / "val.bin", VOCAB, Path(tmp) / "run")
        engine = trainer.engine

        def step() -> None:
            for _ in range(grad_accum):
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
        return {
            "scenario": name, "device": torch.cuda.get_device_name(), "params": trainer.num_params,
            "micro_batch": micro_batch, "grad_accum": grad_accum, "block_size": trainer.model_config.block_size,
            "tokens_per_s": tokens_per_s,
            "mfu": trainer.flops_per_token * tokens_per_s / trainer.peak_flops if trainer.peak_flops else None,
            "peak_allocated_gb": torch.cuda.max_memory_allocated() / 1e9,
            "peak_reserved_gb": torch.cuda.max_memory_reserved() / 1e9,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=list(SCENARIOS), help="run one scenario in this process")
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps")
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_train_gpu: no CUDA device here; figures are 'not measured'")
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args.steps, args.micro_batch, args.grad_accum)))
        return
    results = []
    for name in SCENARIOS:
        done = subprocess.run(
            [sys.executable, __file__, "--scenario", name, "--steps", str(args.steps),
             "--micro-batch", str(args.micro_batch), "--grad-accum", str(args.grad_accum)],
            capture_output=True, text=True, check=False,
        )
        lines = done.stdout.strip().splitlines()
        results.append(json.loads(lines[-1]) if done.returncode == 0 and lines
                       else {"scenario": name, "error": done.stderr[-2000:]})
        print(json.dumps(results[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
