"""Token shards of the bundled sample corpus (a small BPE trained here) and a published tokenize run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers

from als_lm.cli import main
from shared.runs import RunWriter
from shared.schemas.corpus import TokenShardsMeta
from shared.store import sha256_file

# Two cores shared with other work: one intra-op thread per process avoids oversubscription, which
# slows these small matmuls down by an order of magnitude.
torch.set_num_threads(1)

SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"
DIST_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "DS_ACCELERATOR")


def build_shards(out: Path, vocab_size: int = 512) -> Path:
    texts = [json.loads(line)["text"] for f in sorted(SAMPLE.glob("*.jsonl")) for line in f.open()]
    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    eos = tok.token_to_id("<|eos|>")
    split = max(1, len(texts) // 10)
    counts = {}
    for name, docs in (("val.bin", texts[:split]), ("train.bin", texts[split:])):
        ids = [i for enc in tok.encode_batch(docs) for i in (*enc.ids, eos)]
        np.asarray(ids, dtype=np.uint16).tofile(out / name)
        counts[name] = len(ids)
    meta = TokenShardsMeta(vocab_size=tok.get_vocab_size(), eos_id=eos, bos_id=0, pad_id=2,
                           n_train_tokens=counts["train.bin"], n_val_tokens=counts["val.bin"],
                           tokenizer_sha256=sha256_file(out / "tokenizer.json"))
    (out / "meta.json").write_text(meta.model_dump_json())
    return out


def publish_tokenize(store, shards: Path, **replace: Path) -> str:
    """A tokenize run holding ``shards`` (optionally with some files replaced); returns its run."""
    writer = RunWriter(store, "tokenize", {"fixture": True, "replace": sorted(replace)}, [])
    for name in ("train.bin", "val.bin", "meta.json", "tokenizer.json"):
        writer.put_file(name, replace.get(name.replace(".", "_"), shards / name))
    return writer.publish().run


@pytest.fixture(scope="session")
def sample_shards(tmp_path_factory) -> Path:
    return build_shards(tmp_path_factory.mktemp("shards"))


def cli_env(store_root: Path, work_dir: Path, **train: object) -> dict[str, str]:
    """Environment for an ``als-lm`` subprocess: a local store, and no process group inherited
    from an in-process test (its MASTER_PORT is taken)."""
    env = {k: v for k, v in os.environ.items() if k not in DIST_ENV and not k.startswith("ALS_")}
    env.update(OMP_NUM_THREADS="1", ALS_STORE__BACKEND="local", ALS_STORE__ROOT=str(store_root), ALS_WORK_DIR=str(work_dir))
    env.update({f"ALS_TRAIN__{k.upper()}": str(v) for k, v in train.items()})
    return env


ALS_LM = str(Path(sys.executable).with_name("als-lm"))


def als_lm(monkeypatch, *args) -> int:
    """Run ``als-lm ARGS`` in this process; its exit code."""
    monkeypatch.setattr(sys, "argv", ["als-lm", *args])
    try:
        main()
    except SystemExit as exit_:
        return exit_.code
    return 0
