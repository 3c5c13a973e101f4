"""What `als-lm experiment-extract` spends besides training and the per-checkpoint chain (docs/extract.md).

The probe items and the QA pairs are built on the bundled sample as the stages build them (timed); then
one mini-shaped model (the CPU experiment's preset: 4 layers, n_embd 256, context 256, a BPE of the
sample's size) at random initialisation is probed in process on `--probe-items` items, as extract-measure
probes each kept checkpoint of both models. One thread. The QA side is the main experiment's per-checkpoint
chain (export, serve, ask, score), measured in docs/experiment.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_extract_measure.py [--probe-items 80]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SAMPLE = Path(__file__).resolve().parents[1] / "services" / "scraper" / "sample"
VOCAB = 9_666  # the sample corpus's tokenizer (docs/experiment.md)


@click.command()
@click.option("--probe-items", default=80, show_default=True)
def main(probe_items: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from services.evaluator.extract import measure
    from services.evaluator.extract.qa import write_pairs
    from services.evaluator.inputs import load_benchmark
    from services.evaluator.probe.backends.torch_model import TorchBackend
    from services.evaluator.probe.items import Corpus, build_items
    from services.evaluator.probe.tokens import ProbeTokenizer
    from services.evaluator.settings import BENCHMARK
    from services.trainer.model import PRESETS
    from shared.schemas.corpus import CleanDocument
    from shared.schemas.model import ModelConfig

    torch.set_num_threads(1)
    docs = [CleanDocument(id=d["id"], source=d["source"], category="research", title=d["title"], text=d["text"])
            for path in sorted(SAMPLE.glob("*.jsonl")) for d in map(json.loads, path.read_text().splitlines())]
    train, validation = [d for i, d in enumerate(docs) if i % 10], [d for i, d in enumerate(docs) if not i % 10]
    benchmark = load_benchmark(BENCHMARK)
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    built = build_items(benchmark, Corpus(train, validation), k=9, seed=1337)
    out["probe_items_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    written = write_pairs(built.items, train, benchmark, seed=1337, leak_ngram=8)
    out["qa_pairs_s"] = time.perf_counter() - t0
    out["items"], out["pairs"] = len(built.items), len(written.pairs)

    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([d.text for d in train], trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    with tempfile.TemporaryDirectory() as tmp:
        tok.save(f"{tmp}/tokenizer.json")
        tokenizer = ProbeTokenizer(Path(tmp) / "tokenizer.json")
    shape = ModelConfig(**PRESETS["mini"], vocab_size=tokenizer.vocab_size, dropout=0.0)
    backend = TorchBackend.random_init("mini@init", shape, tokenizer, seed=0)
    halves = written.halves
    items = [i for i in built.items if i.benchmark_id in halves][:probe_items]
    t0 = time.perf_counter()
    measure.probe_outcomes(backend, "main", 0, "init", items, halves, greedy_tokens=8)
    out["probe_s_per_item"] = (time.perf_counter() - t0) / len(items)
    out["measure_probe_s_per_model_checkpoint"] = out["probe_s_per_item"] * sum(
        i.benchmark_id in halves for i in built.items)
    print(json.dumps({k: round(v, 3) for k, v in out.items()}, indent=2))


if __name__ == "__main__":
    main()
