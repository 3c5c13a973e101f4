"""CPU training benchmarks (issue 5), in one run:

1. tokens/s of the tiny and small presets through the DeepSpeed engine (the trainer's own
   configuration, ZeRO 0, fp32) vs a plain PyTorch loop of the same model, optimizer, gradient
   accumulation and clipping; goal: DeepSpeed >= 80 % of plain;
2. the tiny preset trained on the bundled sample corpus for a few minutes through the real
   ``Trainer`` (checkpoints, evaluation, CSV), its best validation loss vs the unigram baseline;
3. with ``--precisions``, the experiment's training (mini preset, 8 x 256 tokens a step) through the
   DeepSpeed engine in bf16 mixed precision vs fp32, the reference (experiment-cpu.yaml's choice).

Token shards come from a quick byte-level BPE over services/scraper/sample/*.jsonl (the same
recipe as the tokenize stage, smaller vocabulary), 10 % of the documents held out.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train_cpu.py --out docs/bench/trainer-cpu.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train_cpu.py --presets "" --train-steps 0 --precisions --vocab 9666 \
        --steps 8 --out docs/bench/trainer-cpu-precision.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.trainer.data import unigram_loss
from services.trainer.model import GPT
from services.trainer.settings import CONFIG_DIR as CONFIGS
from services.trainer.settings import TrainConfig
from services.trainer.train import Trainer, lr_at
from tests.trainer.conftest import build_shards


def plain_loop(trainer: Trainer, steps: int) -> float:
    """The same model, data, AdamW, accumulation, clipping and schedule without DeepSpeed; tokens/s."""
    cfg = trainer.cfg
    torch.manual_seed(0)
    model = GPT(trainer.model_config)
    optimizer = torch.optim.AdamW(model.param_groups(cfg.weight_decay), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                                  eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, cfg) / cfg.lr)
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        for _ in range(cfg.grad_accum):
            x, y = trainer.batches.next()
            _, loss = model(x, y)
            (loss / cfg.grad_accum).backward()
            loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return steps * trainer.tokens_per_step / (time.perf_counter() - t0)


def deepspeed_loop(trainer: Trainer, steps: int) -> float:
    """The trainer's inner loop (Trainer.fit without logging, evaluation and checkpoints); tokens/s."""
    engine = trainer.engine
    t0 = time.perf_counter()
    for _ in range(steps):
        for _ in range(trainer.cfg.grad_accum):
            x, y = trainer.batches.next()
            _, loss = engine(x, y)
            engine.backward(loss)
            engine.step()
            loss.item()
    return steps * trainer.tokens_per_step / (time.perf_counter() - t0)


def throughput(preset: str, shards: Path, work: Path, vocab: int, args) -> dict:
    cfg = TrainConfig(preset=preset, device="cpu", block_size=args.block_size, micro_batch=args.micro_batch,
                      grad_accum=args.grad_accum, max_steps=1000, warmup_steps=10)
    trainer = Trainer(cfg, 1337, shards / "train.bin", shards / "val.bin", vocab, work / f"tp-{preset}")
    deepspeed_loop(trainer, 1), plain_loop(trainer, 1)  # warm-up: allocator, first-call overheads
    plain, ds = [], []
    for _ in range(args.rounds):  # interleaved, so load changes on a shared machine hit both alike
        plain.append(plain_loop(trainer, args.steps))
        ds.append(deepspeed_loop(trainer, args.steps))
    return {
        "preset": preset, "params": trainer.num_params, "block_size": args.block_size,
        "tokens_per_step": trainer.tokens_per_step,
        "plain_tokens_per_s": statistics.median(plain), "deepspeed_tokens_per_s": statistics.median(ds),
        "deepspeed_vs_plain": statistics.median(ds) / statistics.median(plain),
        "rounds": {"plain": plain, "deepspeed": ds},
    }


def precisions(shards: Path, work: Path, vocab: int, args) -> dict:
    """tokens/s of the experiment's training step in fp32 (the reference) and bf16, rounds interleaved."""
    trainers = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(preset="mini", device="cpu", precision=precision, block_size=256, micro_batch=8,
                          grad_accum=1, max_steps=1000, warmup_steps=10)
        trainers[precision] = Trainer(cfg, 1337, shards / "train.bin", shards / "val.bin", vocab, work / precision)
        deepspeed_loop(trainers[precision], 2)  # warm-up
    rounds = {p: [] for p in trainers}
    for _ in range(args.rounds):  # interleaved, so load changes hit both alike
        for p, t in trainers.items():
            rounds[p].append(deepspeed_loop(t, args.steps))
    fp32, bf16 = (statistics.median(rounds[p]) for p in ("fp32", "bf16"))
    return {"preset": "mini", "tokens_per_step": 8 * 256, "steps_per_round": args.steps,
            "fp32_tokens_per_s": fp32, "bf16_tokens_per_s": bf16, "bf16_vs_fp32": bf16 / fp32,
            "cpu_has_native_bf16": "avx512_bf16" in Path("/proc/cpuinfo").read_text(), "rounds": rounds}


def train_sample(shards: Path, work: Path, vocab: int, args) -> dict:
    tiny_cpu = yaml.safe_load((CONFIGS / "tiny-cpu.yaml").read_text())
    cfg = TrainConfig(**{**tiny_cpu, "max_steps": args.train_steps, "checkpoint_interval": args.train_steps})
    trainer = Trainer(cfg, 1337, shards / "train.bin", shards / "val.bin", vocab, work / "sample-run")
    t0 = time.perf_counter()
    result = trainer.fit()
    elapsed = time.perf_counter() - t0
    return {
        "preset": "tiny", "params": trainer.num_params, "config": cfg.model_dump(mode="json"),
        "steps": result.step, "tokens_seen": result.tokens_seen, "seconds": elapsed,
        "best_val_loss": result.best_val_loss,
        "unigram_val_loss": unigram_loss(trainer.train_shard, trainer.val_shard, vocab),
        "first_val_loss": next(h["val_loss"] for h in result.history if h["val_loss"] is not None),
        "train_tokens": len(trainer.train_shard.tokens), "val_tokens": len(trainer.val_shard.tokens),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per timed round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--train-steps", type=int, default=300, help="0 skips the sample training run")
    parser.add_argument("--precisions", action="store_true", help="also bf16 vs fp32 on the experiment's mini preset")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    report = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "load_average_1m_at_start": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        shards = build_shards(Path(tmp) / "shards", vocab_size=args.vocab)
        vocab = json.loads((shards / "meta.json").read_text())["vocab_size"]
        report["throughput"] = [throughput(p, shards, Path(tmp), vocab, args) for p in args.presets.split(",") if p]
        if args.precisions:
            report["precisions"] = precisions(shards, Path(tmp), vocab, args)
        if args.train_steps:
            report["sample_training"] = train_sample(shards, Path(tmp), vocab, args)
    report["load_average_1m_at_end"] = os.getloadavg()[0]
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
