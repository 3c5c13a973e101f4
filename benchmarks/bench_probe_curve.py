"""What the probe's dense multi-seed curve costs (issue 22): one seed of the experiment's training, one point
of the probe.

1. The trainer's ``mini`` preset with the CPU experiment's batch (8 x 256 tokens, one thread) for ``--steps``
   steps through the real ``Trainer``, writing a probe snapshot every fifth of them: tokens/s, and the seconds
   one snapshot adds;
2. the in-process probe on every item the bundled benchmark and sample give (``build_items``), with a GPT of
   the mini shape and a 9,666-token vocabulary (the experiment's): seconds per point by rank only (a snapshot or
   another seed) and with greedy continuations (the main seed's checkpoints), against the one-forward-per-
   candidate reference (tests/evaluator/probe/test_torch_backend.py) on ``--reference-items`` items.

Each figure is given as wall seconds and as CPU seconds of this process (``time.process_time``, one thread): on
a machine shared with other jobs the CPU seconds are what one core of an idle machine would take, roughly.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_probe_curve.py --out /tmp/probe-curve.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.evaluator.inputs import load_benchmark
from services.evaluator.probe.backends.torch_model import TorchBackend, _model
from services.evaluator.probe.items import Corpus, build_items
from services.evaluator.probe.score import score_items
from services.evaluator.probe.tokens import ProbeTokenizer
from services.evaluator.settings import BENCHMARK
from services.trainer.settings import TrainConfig
from services.trainer.train import Trainer
from shared.schemas.corpus import TokenShardsMeta
from shared.schemas.model import ModelConfig
from shared.schemas.probe import TARGET_DELIMITER
from tests.evaluator.probe.test_probe_items import sample_documents, split
from tests.evaluator.probe.test_torch_backend import reference_loglikelihoods
from tests.trainer.conftest import build_shards


def train_seed(work: Path, steps: int) -> dict:
    shards = build_shards(work / "shards", vocab_size=9666)
    vocab = TokenShardsMeta.model_validate_json((shards / "meta.json").read_text()).vocab_size
    cfg = TrainConfig(preset="mini", device="cpu", max_steps=steps, micro_batch=8, grad_accum=1, lr=2e-3, min_lr=2e-4,
                      warmup_steps=2, dropout=0.0, log_interval=steps, eval_interval=steps, eval_batches=2,
                      checkpoint_interval=steps, early_stopping_patience=0,
                      probe_at_fractions=[0.2, 0.4, 0.6, 0.8, 1.0])
    trainer = Trainer(cfg, 1337, shards / "train.bin", shards / "val.bin", vocab, work / "run")
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.fit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    t1 = time.process_time()
    for step in range(5):
        trainer._snapshot(steps + 1 + step)
    tokens = steps * trainer.tokens_per_step
    return {"steps": steps, "tokens": tokens, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "tokens_per_wall_s": round(tokens / wall), "tokens_per_cpu_s": round(tokens / cpu),
            "cpu_s_per_snapshot": round((time.process_time() - t1) / 5, 3), "vocab": vocab}


def probe_point(work: Path, reference_items: int) -> dict:
    train, val = split(sample_documents())
    items = build_items(load_benchmark(BENCHMARK), Corpus(train, val), k=9, seed=1337).items
    tokenizer = ProbeTokenizer(work / "shards" / "tokenizer.json")
    config = ModelConfig(n_layer=4, n_head=4, n_embd=256, block_size=256, vocab_size=tokenizer.vocab_size,
                         dropout=0.0, bias=True)
    torch.manual_seed(0)
    backend = TorchBackend("mini", config, _model(config, "cpu"), tokenizer)
    out = {"items": len(items)}
    for label, greedy in (("ranks_only", None), ("with_greedy_8", 8)):
        wall, cpu = time.perf_counter(), time.process_time()
        score_items(backend, items, greedy_tokens=greedy)
        out[f"point_{label}"] = {"wall_s": round(time.perf_counter() - wall, 1),
                                 "cpu_s": round(time.process_time() - cpu, 1)}
    sub = items[:reference_items]
    wall, cpu = time.perf_counter(), time.process_time()
    for item in sub:
        reference_loglikelihoods(backend, item.stem, [TARGET_DELIMITER + c for c in item.candidates])
    scale = len(items) / len(sub)
    out["reference_point_ranks_only"] = {"wall_s": round((time.perf_counter() - wall) * scale, 1),
                                         "cpu_s": round((time.process_time() - cpu) * scale, 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--reference-items", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        result = {"load_average_before": os.getloadavg(), "train": train_seed(Path(tmp), args.steps),
                  "probe": probe_point(Path(tmp), args.reference_items), "load_average_after": os.getloadavg()}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
