"""`make gpu-check`: settle the plan on the first GPU, in one call of at most 8 minutes (issue 26).

For this GPU (the catalogue entry matched by device name, with its real memory) the script asks
`als-lm train --plan` for `base`'s three fastest set-ups (each at its fastest fitting micro-batch)
and for `large` with ZeRO-3 and the optimizer and parameters offloaded, then trains each in its own
process (so the allocator's peak is its own) through the real ``Trainer``: bf16, random tokens
over the seed's 16,384-token vocabulary, context 1024, two warm-up steps, then ``--steps`` timed
optimizer steps (3 for `large`). Measured beside predicted, one line each:

- **peak**: ``torch.cuda.max_memory_allocated`` over the timed steps against the plan's peak
  less its reserve (the reserve is the CUDA context and slack, which the allocator never sees);
- **tokens/s** against the plan's;
- **MFU**: model FLOPs (6·N + 12·L·d·s a token, as the trainer's metrics.csv) over the dense
  bf16 peak; the plan holds the hardware utilisation at ``--mfu`` (0.35), which counts a forward
  pass more with checkpointing.

The rows are written in docs/benchmarks.md's table format to ``--md`` (and every figure to
``--json``), ready to paste. The first offloaded run JIT-builds DeepSpeedCPUAdam (a minute or two,
cached); if it cannot be built, the offloaded scenario is reported as not run and the others still
run. A scenario still running when ``--budget`` seconds are spent is stopped and reported.
Without a CUDA device it refuses in one line with status 1.

    make gpu-check                                   # .venv/bin/python benchmarks/gpu_check.py
    .venv/bin/python benchmarks/gpu_check.py --steps 20 --md docs/bench/gpu-check.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
VOCAB = 16_384
CPU_ADAM_LEFT_S = 30  # a scenario needs at least this much of the budget to be started
LARGE_OFFLOADED = (3, "optimizer+params")


def scenarios(gpu, cpu_adam_ns: float, host_memory_gib: float | None = None) -> list[dict]:
    """The plan's three fastest set-ups for `base` on ``gpu`` and its best ZeRO-3-offload one for
    `large`, as train settings (micro-batch, accumulation, stage, offload, checkpointing)."""
    from services.trainer import plan
    from services.trainer.settings import TrainConfig

    chosen = []
    for preset, wanted, count in (("base", None, 3), ("large", LARGE_OFFLOADED, 1)):
        p = plan.make_plan(TrainConfig(preset=preset), gpu, cpu_adam_ns_per_param=cpu_adam_ns,
                           host_memory_gib=host_memory_gib)
        seen = set()
        for e in p.ranked:
            setup = (e.zero_stage, e.offload, e.gradient_checkpointing)
            if setup in seen or (wanted and setup[:2] != wanted):
                continue
            seen.add(setup)
            chosen.append({"name": f"{preset}-zero{e.zero_stage}-{e.offload.replace('+', '-')}"
                                   f"-{'ckpt' if e.gradient_checkpointing else 'nockpt'}-{e.micro_batch}x{e.grad_accum}",
                           "settings": {"preset": preset, "zero_stage": e.zero_stage, "offload": e.offload,
                                        "gradient_checkpointing": e.gradient_checkpointing,
                                        "micro_batch": e.micro_batch, "grad_accum": e.grad_accum}})
            if len(seen) == count:
                break
    return chosen


def this_gpu():
    import torch

    from services.trainer.gpus import for_device

    name = torch.cuda.get_device_name()
    gpu = for_device(name, torch.cuda.get_device_properties(0).total_memory)
    if gpu is None:
        sys.exit(f"gpu-check: {name} is not in services/trainer/gpus.py; add its bf16 peak there")
    return gpu


def run_scenario(settings: dict, steps: int) -> dict:
    """Train ``settings`` for 2 + ``steps`` optimizer steps in this process; the figures."""
    import numpy as np
    import torch

    from services.trainer import plan
    from services.trainer.gpus import GIB
    from services.trainer.settings import TrainConfig
    from services.trainer.train import Trainer

    gpu = this_gpu()
    cfg = TrainConfig(**settings, device="cuda", precision="bf16", max_steps=10_000, warmup_steps=10)
    predicted = plan.make_plan(cfg, gpu).asked
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for shard, n in (("train.bin", 4_000_000), ("val.bin", 200_000)):
            rng.integers(0, VOCAB, n, dtype=np.uint16).tofile(Path(tmp) / shard)
        trainer = Trainer(cfg, 1337, Path(tmp) / "train.bin", Path(tmp) / "val.bin", VOCAB, Path(tmp) / "run")
        engine = trainer.engine

        def step() -> None:  # the trainer's loop: the logits stay referenced until the next forward
            for _ in range(cfg.grad_accum):
                x, y = (t.to(engine.device) for t in trainer.batches.next())
                _, loss = engine(x, y)
                engine.backward(loss)
                engine.step()

        for _ in range(2):  # warm-up: kernels, allocator, Adam's moments, offload buffers
            step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
        tokens_per_s = steps * trainer.tokens_per_step / (time.perf_counter() - t0)
    return {
        "device": gpu.name, "params": trainer.num_params, "settings": settings, "steps": steps,
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / GIB,
        "predicted_allocated_gib": predicted.peak_gib - predicted.reserve_gib,
        "predicted_peak_at": predicted.peak_at,
        "tokens_per_s": tokens_per_s, "predicted_tokens_per_s": predicted.tokens_per_s,
        "mfu": trainer.flops_per_token * tokens_per_s / (gpu.bf16_tflops * 1e12),
        "predicted_mfu": trainer.flops_per_token * predicted.tokens_per_s / (gpu.bf16_tflops * 1e12),
    }


def describe(settings: dict) -> str:
    s = settings
    return (f"`{s['preset']}` ZeRO {s['zero_stage']}, offload {s['offload']}, checkpointing "
            f"{'on' if s['gradient_checkpointing'] else 'off'}, {s['micro_batch']} × {s['grad_accum']}")


def table(rows: list[dict], command: str, when: str) -> str:
    """docs/benchmarks.md's columns (area | what | goal | measured | reference | command), a row a scenario."""
    out = ["| area | what | goal | measured | reference in the same run | command |",
           "|---|---|---|---|---|---|"]
    for row in rows:
        what = describe(row["settings"]) if "settings" in row else row["name"]
        if "error" in row:
            measured = f"**not run**: {row['error'].splitlines()[-1][:160] if row['error'] else 'no output'}"
            reference = "—"
        else:
            peak_err = row["peak_allocated_gib"] / row["predicted_allocated_gib"] - 1
            measured = (f"peak **{row['peak_allocated_gib']:.2f} GiB** allocated ({row['peak_reserved_gib']:.2f} "
                        f"reserved), **{row['tokens_per_s']:,.0f} tokens/s**, MFU **{row['mfu']:.1%}** "
                        f"({row['steps']} steps, {row['device']})")
            reference = (f"plan: {row['predicted_allocated_gib']:.2f} GiB at the {row['predicted_peak_at']} "
                         f"({peak_err:+.1%}), {row['predicted_tokens_per_s']:,.0f} tokens/s, "
                         f"MFU {row['predicted_mfu']:.1%}")
        goal = "peak within 15 %" + ("; MFU ≥ 40 %" if row.get("settings", {}).get("preset") == "base" else "")
        out.append(f"| training (GPU, {when}) | {what} | {goal} | {measured} | {reference} | `{command}` |")
    return "\n".join(out) + "\n"


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)  # JSON settings: run one in this process
    parser.add_argument("--steps", type=int, default=10, help="timed optimizer steps for base [default: 10]")
    parser.add_argument("--large-steps", type=int, default=3, help="timed optimizer steps for large [default: 3]")
    parser.add_argument("--budget", type=int, default=450, help="seconds for the whole call [default: 450]")
    parser.add_argument("--md", type=Path, default=ROOT / "docs" / "bench" / "gpu-check.md",
                        help="the rows in docs/benchmarks.md's table format [default: docs/bench/gpu-check.md]")
    parser.add_argument("--json", type=Path, help="every figure, as JSON")
    args = parser.parse_args(argv)
    for name in ("steps", "large_steps", "budget"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, not {getattr(args, name)}")
    return args


def build_cpu_adam() -> str | None:
    """JIT-build DeepSpeedCPUAdam once, outside any timed scenario; the reason when it cannot be."""
    try:
        from deepspeed.ops.op_builder import CPUAdamBuilder

        CPUAdamBuilder().load()
    except Exception as err:  # noqa: BLE001 - any build failure is reported; the other scenarios still run
        return f"DeepSpeedCPUAdam could not be built: {type(err).__name__}: {err}"
    return None


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        sys.exit(f"gpu-check: torch {torch.__version__} (CUDA build {torch.version.cuda}) sees no CUDA device; "
                 "run it on a GPU machine after make setup")
    if args.scenario:
        settings = json.loads(args.scenario)
        steps = args.large_steps if settings["preset"] == "large" else args.steps
        print(json.dumps(run_scenario(settings, steps)))
        return
    deadline = time.monotonic() + args.budget
    gpu = this_gpu()
    from services.trainer.plan import measure_cpu_adam

    chosen = scenarios(gpu, measure_cpu_adam())
    print(f"gpu-check on {gpu.name} ({gpu.memory_gib:.1f} GiB): "
          + "; ".join(describe(c["settings"]) for c in chosen), flush=True)
    t0 = time.perf_counter()
    cpu_adam_error = build_cpu_adam() if any(c["settings"]["offload"] != "none" for c in chosen) else None
    print(f"DeepSpeedCPUAdam: {cpu_adam_error or f'ready in {time.perf_counter() - t0:.0f} s'}", flush=True)
    rows = []
    for c in chosen:
        cmd = [sys.executable, __file__, "--scenario", json.dumps(c["settings"]), "--steps", str(args.steps),
               "--large-steps", str(args.large_steps)]
        left = deadline - time.monotonic()
        if c["settings"]["offload"] != "none" and cpu_adam_error:
            row = {"error": cpu_adam_error}
        elif left < CPU_ADAM_LEFT_S:
            row = {"error": f"not started: {left:.0f} s of the {args.budget} s budget left"}
        else:
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=left)
                lines = done.stdout.strip().splitlines()
                row = json.loads(lines[-1]) if done.returncode == 0 and lines else {"error": done.stderr[-2000:]}
            except subprocess.TimeoutExpired:
                row = {"error": f"stopped: still running when the {args.budget} s budget was spent"}
        row = {"name": c["name"], "settings": c["settings"], **row}
        rows.append(row)
        if "error" in row:
            print(f"{c['name']}: NOT RUN {row['error'][-400:]}", flush=True)
        else:
            print(f"{c['name']}: peak {row['peak_allocated_gib']:.2f} GiB (plan {row['predicted_allocated_gib']:.2f}, "
                  f"{row['peak_allocated_gib'] / row['predicted_allocated_gib'] - 1:+.1%}); "
                  f"{row['tokens_per_s']:,.0f} tokens/s (plan {row['predicted_tokens_per_s']:,.0f}); "
                  f"MFU {row['mfu']:.1%} (plan {row['predicted_mfu']:.1%})", flush=True)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python benchmarks/gpu_check.py", *given]) if given else "make gpu-check"
    write_atomically(args.md, table(rows, command, time.strftime("%Y-%m-%d")))
    print(f"rows written to {args.md}", flush=True)
    if args.json:
        write_atomically(args.json, json.dumps(rows, indent=2) + "\n")
    if any("error" in r for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
