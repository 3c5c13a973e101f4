"""What the llama.cpp probe systems cost per item (docs/probe.md): the RAG generator closed-book and with the
retrieved chunks of the default index (top 5 of 512 tokens), and the exported GGUF of the CPU experiment's mini
shape beside the same model in process. CPU seconds of this process (``time.process_time``) are reported beside
wall time: on a machine shared with other jobs they estimate one free core.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_probe_llama.py /tmp/probe-cost --rag 8 --gguf 40
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
from tokenizers import Tokenizer

from services.evaluator.probe.backends import rag
from services.evaluator.probe.backends.llama import LlamaBackend
from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.score import score_item
from services.evaluator.probe.tokens import ProbeTokenizer
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.stages import probe_items, rag_index
from services.evaluator.stages.probe import read_items
from services.exporter.checkpoint import load_checkpoint, read_tokenizer
from services.exporter.gguf_export import write_gguf
from services.trainer.model import GPT, GPTConfig
from shared import runs
from shared.store import LocalStore

# The probe tests' corpus fixture (the bundled sample, split and tokenised as the stage test does); those test
# modules import each other by name, as pytest's rootdir-relative import lets them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluator" / "probe"))
from test_probe_stage import publish_corpus


def timed(backend, items) -> str:
    wall, cpu = time.time(), time.process_time()
    for item in items:
        score_item(backend, item, greedy_tokens=8)
    n = len(items)
    return f"{backend.name}: wall {(time.time() - wall) / n:.3f} s/item, CPU {(time.process_time() - cpu) / n:.3f} s/item (n={n})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--rag", type=int, default=8, help="items scored closed-book and with retrieval")
    parser.add_argument("--gguf", type=int, default=40, help="items scored on the mini GGUF and in process")
    args = parser.parse_args()
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    store = LocalStore(root / "artifacts")
    settings = EvaluatorSettings(work_dir=root / "work", store={"root": root / "artifacts"}, eval={"num_thread": 1})
    if not runs.runs(store, "process"):
        publish_corpus(store, root)
    items_run, _ = probe_items.run(store, settings)
    rag_index.run(store, settings)
    items = read_items(runs.fetch(store, items_run.output("items.jsonl"), root / "items.jsonl"))
    sample = random.Random(0).sample(items, args.rag)
    closed = rag.closed_book(settings)
    with_chunks = rag.with_retrieval(store, settings, closed)
    print(timed(closed, sample), flush=True)
    print(timed(with_chunks, sample), flush=True)
    tokens = sorted(len(closed.tokenize(with_chunks.context(i.stem))) for i in sample)
    print(f"RAG context tokens (Gemma's): {tokens}")

    # The mini preset's shape with random weights: the cost does not depend on them.
    torch.manual_seed(0)
    torch.set_num_threads(1)
    vocab = Tokenizer.from_file(str(root / "tokenizer.json")).get_vocab_size()
    config = GPTConfig(n_layer=4, n_head=4, n_embd=256, block_size=256, vocab_size=vocab, dropout=0.0)
    torch.save({"config": config.to_dict(), "model": GPT(config).state_dict()}, root / "mini.pt")
    shape, state = load_checkpoint(root / "mini.pt")
    gguf = write_gguf(shape, state, read_tokenizer(root / "tokenizer.json", shape), root / "mini-f32.gguf", "f32", "mini")
    print(f"mini shape, vocabulary {vocab}:")
    print(timed(LlamaBackend.from_gguf(gguf, threads=1, n_ctx=256, as_trained=True, name="gguf"), items[:args.gguf]))
    print(timed(TorchBackend.from_checkpoint("in process", root / "mini.pt", ProbeTokenizer(root / "tokenizer.json")),
                items[:args.gguf]))


if __name__ == "__main__":
    main()
