"""What the base-model condition adds to each checkpoint of `als-lm experiment` (issue 23).

One mini-shaped checkpoint (the CPU experiment's preset: 4 layers, n_embd 256, context 256, a BPE of the
sample's size) is exported at Q5_K_M, served in a fresh Ollama server and asked all 152 questions twice
with the experiment's options (96 tokens, 1 thread): through the chat template (`eval-scratch`, the
reference) and raw, k-shot (`eval-scratch_base`); each is then scored. The weights are random, so no
answer has learned to stop early: an upper bound on the asking time of a trained checkpoint.

    .venv/bin/python benchmarks/bench_base_condition.py [--root /tmp/bench-base] [--out base.json]
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VOCAB = 9_666  # the sample corpus's tokenizer (docs/experiment.md)


def corpus_run(store, texts: list[str], work: Path) -> None:
    """A process run over the sample texts: the scorer's corpus and fabrication lexicon."""
    from shared import runs

    def body(writer, scratch):
        writer.put_bytes("corpus.txt", "\n\n".join(texts).encode())
        writer.put_bytes("train.jsonl", "".join(
            json.dumps({"id": f"d{i}", "source": "sample", "category": "educational", "title": "t", "text": t}) + "\n"
            for i, t in enumerate(texts)).encode())
    runs.run_stage(store, "process", {"bench": "base condition"}, [], body, work_dir=work)


@click.command()
@click.option("--root", type=click.Path(path_type=Path), default=Path("/tmp/bench-base-condition"), show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="also write the figures as JSON here")
def main(root: Path, out: Path | None) -> None:
    from services.evaluator.settings import EvaluatorSettings, for_run
    from services.evaluator.stages import eval as asking
    from services.evaluator.stages import score as scoring
    from services.exporter.settings import ExporterSettings
    from services.exporter.stages import export, serve
    from shared import servers
    from shared.store import LocalStore
    from tests.exporter.conftest import publish_train_run, sample_texts, tiny_state, train_tokenizer

    shutil.rmtree(root, ignore_errors=True)
    store, work = LocalStore(root / "artifacts"), root / "work"
    texts = sample_texts()
    tokenizer = train_tokenizer(texts, VOCAB)
    state = tiny_state(tokenizer.get_vocab_size(), n_layer=4, n_head=4, n_embd=256, block_size=256)
    publish_train_run(store, root / "in", state, tokenizer, texts[-6:])
    corpus_run(store, texts, work)
    common = {"work_dir": work, "store": {"root": store.root}}
    export.run(store, ExporterSettings(**common, export={"quants": ["Q5_K_M"], "default_quant": "Q5_K_M",
                                                         "ppl_max_tokens": 512}))
    figures = {}
    with servers.ollama(root / "ollama").start(timeout=120) as server:
        served, _ = serve.run(store, ExporterSettings(**common, ollama_host=server.base_url,
                                                      serve={"verify_tokens": 4}))
        settings = EvaluatorSettings(**common, ollama_host=server.base_url, eval={"max_tokens": 96, "num_thread": 1})
        for system in ("scratch", "scratch_base"):
            t0 = time.monotonic()
            asked, _ = asking.run(store, for_run(settings, system=system, serve_run=served.run))
            t1 = time.monotonic()
            scoring.run(store, for_run(settings, system=system, eval_run=asked.run))
            figures[system] = {"ask_s": round(t1 - t0, 1), "score_s": round(time.monotonic() - t1, 1),
                               **{k: asked.metrics[k] for k in ("questions", "latency_p50_s", "latency_mean_s",
                                                               "shots_min", "shots_mean") if k in asked.metrics}}
            print(system, figures[system], flush=True)
    if out:
        out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
