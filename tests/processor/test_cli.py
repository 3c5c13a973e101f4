"""``process`` then ``tokenize`` end to end through the CLI on the bundled sample, against a
local store and a real MinIO bucket: the contract's outputs, typed and consistent."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from tokenizers import Tokenizer

from services.processor.cli import process, tokenize
from shared import runs
from shared.schemas.corpus import CATEGORIES, CleanDocument, TokenShardsMeta
from shared.store import LocalStore, S3Store
from tests.conftest import s3_settings
from tests.processor.raw import publish_scrape, sample_lines


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def configured_store(request, tmp_path, monkeypatch):
    """A store, and the ALS_* environment that points the CLI at it."""
    monkeypatch.setenv("ALS_WORK_DIR", str(tmp_path / "work"))
    if request.param == "local":
        store = LocalStore(tmp_path / "artifacts")
        monkeypatch.setenv("ALS_STORE__BACKEND", "local")
        monkeypatch.setenv("ALS_STORE__ROOT", str(store.root))
        return store
    server = request.getfixturevalue("minio_server")
    bucket = f"t-{os.urandom(4).hex()}"
    for key, value in {"BACKEND": "s3", "ENDPOINT": server.endpoint, "BUCKET": bucket,
                       "ACCESS_KEY": server.access_key, "SECRET_KEY": server.secret_key}.items():
        monkeypatch.setenv(f"ALS_STORE__{key}", value)
    return S3Store(s3_settings(server, bucket))


def invoke(command, *args):
    result = CliRunner().invoke(command, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_process_and_tokenize_publish_the_contract_outputs(configured_store, tmp_path):
    store = configured_store
    publish_scrape(store, tmp_path, sample_lines(), stage="scrape-sample")

    assert "process: published process/" in invoke(process)
    assert "process: skipped (unchanged)" in invoke(process)
    processed = runs.latest(store, "process")
    assert {o.name for o in processed.outputs} == {
        "train.jsonl", "val.jsonl", "corpus.txt", "excluded.jsonl", "stats.md", "stats.json"}
    assert all(i.run.startswith("scrape-sample/") for i in processed.inputs)

    def docs(name):
        lines = store.get_bytes(processed.output(name).key).decode().splitlines()
        return [CleanDocument.model_validate_json(line) for line in lines]

    train, val = docs("train.jsonl"), docs("val.jsonl")
    assert not {d.id for d in train} & {d.id for d in val}
    assert {d.category for d in val} == {d.category for d in train} == set(CATEGORIES)
    stats = json.loads(store.get_bytes(processed.output("stats.json").key))
    assert stats["total"]["documents"] == len(train) + len(val) == processed.metrics["documents"]
    assert stats["steps"]["read"]["documents_out"] == len(sample_lines())
    assert stats["medical_terms"]["top"][0][1] > 0
    corpus = store.get_bytes(processed.output("corpus.txt").key).decode()
    assert corpus == "\n\n".join(d.text for d in train) + "\n"

    assert "tokenize: published tokenize/" in invoke(tokenize)
    tokenized = runs.latest(store, "tokenize")
    assert {o.name for o in tokenized.outputs} == {
        "tokenizer.json", "validation.md", "validation.json", "train.bin", "val.bin", "meta.json"}
    meta = TokenShardsMeta.model_validate_json(store.get_bytes(tokenized.output("meta.json").key))
    tok_path = runs.fetch(store, tokenized.output("tokenizer.json"), tmp_path / "tokenizer.json")
    tokenizer = Tokenizer.from_file(str(tok_path))
    assert (meta.bos_id, meta.eos_id, meta.pad_id) == (0, 1, 2)
    validation = json.loads(store.get_bytes(tokenized.output("validation.json").key))
    assert meta.vocab_size == tokenizer.get_vocab_size() == validation["vocab_size"]
    assert meta.tokenizer_sha256 == tokenized.output("tokenizer.json").sha256
    val_ids = np.frombuffer(store.get_bytes(tokenized.output("val.bin").key), dtype=np.uint16)
    assert len(val_ids) == meta.n_val_tokens and int((val_ids == meta.eos_id).sum()) == len(val)
    assert tokenizer.decode(val_ids[: np.flatnonzero(val_ids == meta.eos_id)[0]].tolist()) == val[0].text
    assert "Decision:" in store.get_bytes(tokenized.output("validation.md").key).decode()
    assert "tokenize: skipped (unchanged)" in invoke(tokenize)
