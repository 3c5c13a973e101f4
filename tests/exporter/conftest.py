"""A tiny GPT trained a few hundred steps on the bundled sample, and a tokenizer trained on it,
published as real ``tokenize`` and ``train`` runs so the exporter reads them exactly as it reads the
train stage's model. Trained, not freshly initialised: at initialisation every bias is 0 and every
LayerNorm weight 1, so a dropped bias or swapped ``ln_1``/``ln_2`` would compute the same logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from shared import runs
from shared.store import LocalStore

SAMPLE = Path(__file__).resolve().parents[2] / "services" / "scraper" / "sample"
SPECIALS = ["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"]
MEDICAL_TEXT = (
    "Riluzole and edaravone are approved for amyotrophic lateral sclerosis (ALS); "
    "C9orf72 hexanucleotide repeat expansions and SOD1, TARDBP (TDP-43) and FUS mutations "
    "cause familial ALS. Tofersen lowers SOD1 protein in cerebrospinal fluid — ~30% at 100 mg."
)


def sample_texts() -> list[str]:
    texts = []
    for path in sorted(SAMPLE.glob("*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    return texts


def train_tokenizer(texts: list[str], vocab_size: int = 2000) -> Tokenizer:
    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok


def tiny_state(vocab_size: int, seed: int = 0, **shape) -> dict:
    """A random model.pt payload built by the trainer's own GPT class (the producer of the contract)."""
    from services.trainer.model import GPT, GPTConfig

    torch.manual_seed(seed)
    cfg = GPTConfig(**{"n_layer": 2, "n_head": 4, "n_embd": 64, "block_size": 256, "vocab_size": vocab_size,
                       "dropout": 0.0, **shape})
    model = GPT(cfg).eval()
    return {"config": cfg.to_dict(), "model": model.state_dict()}


def trained_state(tokenizer: Tokenizer, texts: list[str], steps: int, seed: int = 0, **shape) -> dict:
    """``tiny_state`` after ``steps`` AdamW steps on ``texts`` (next-token loss, 64-token windows)."""
    from services.trainer.model import GPT, GPTConfig

    state = tiny_state(tokenizer.get_vocab_size(), seed=seed, **shape)
    model = GPT(GPTConfig(**state["config"]))
    model.load_state_dict(state["model"])
    eos = tokenizer.token_to_id("<|eos|>")
    ids = torch.tensor([i for t in texts for i in [*tokenizer.encode(t).ids, eos]])
    rng = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    model.train()
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - 65, (16,), generator=rng)
        batch = torch.stack([ids[s:s + 65] for s in starts])
        _, loss = model(batch[:, :-1].contiguous(), batch[:, 1:].contiguous())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"config": state["config"], "model": model.eval().state_dict(), "loss": loss.item()}


def publish_train_run(store, tmp: Path, state: dict, tokenizer: Tokenizer, val_texts: list[str]) -> str:
    """Publish tokenize (val.bin) and train (model.pt, tokenizer.json) runs; returns the train run."""
    tmp.mkdir(parents=True, exist_ok=True)
    tok_path = tmp / "tokenizer.json"
    tokenizer.save(str(tok_path))
    eos = tokenizer.token_to_id("<|eos|>")
    ids: list[int] = []
    for text in val_texts:
        ids += tokenizer.encode(text).ids + [eos]
    val = tmp / "val.bin"
    np.array(ids, dtype=np.uint16).tofile(val)

    def tokenize_body(writer, scratch):
        writer.put_file("tokenizer.json", tok_path)
        writer.put_file("val.bin", val)

    tok_manifest, _ = runs.run_stage(store, "tokenize", {"t": str(tmp)}, [], tokenize_body, work_dir=tmp / "work")
    model_pt = tmp / "model.pt"
    torch.save(state, model_pt)

    def train_body(writer, scratch):
        writer.put_file("model.pt", model_pt)
        writer.put_file("tokenizer.json", tok_path)

    train, _ = runs.run_stage(store, "train", {"t": str(tmp)}, runs.inputs_from(tok_manifest), train_body,
                              work_dir=tmp / "work")
    return train.run


@pytest.fixture(scope="session")
def texts() -> list[str]:
    return sample_texts()


@pytest.fixture(scope="session")
def tokenizer(texts) -> Tokenizer:
    return train_tokenizer(texts)


@pytest.fixture(scope="session")
def trained(tokenizer, texts) -> dict:
    return trained_state(tokenizer, texts, steps=300)


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tokenizer, texts, trained):
    """One real `export` run of the trained tiny model, shared by the tests that read its files."""
    from services.exporter.settings import ExporterSettings
    from services.exporter.stages import export

    root = tmp_path_factory.mktemp("export")
    store = LocalStore(root / "artifacts")
    state = {"config": trained["config"], "model": trained["model"]}
    train_run = publish_train_run(store, root / "in", state, tokenizer, texts[-6:])
    settings = ExporterSettings(work_dir=root / "work", store={"root": root / "artifacts"}, export={"ppl_max_tokens": 512, "ppl_window": 128})
    manifest, ran = export.run(store, settings)
    assert ran
    return {"store": store, "manifest": manifest, "state": state, "settings": settings, "root": root,
            "train_run": train_run}
