"""Token windows: validated against the model, seeded per rank, resumable mid-stream."""

from __future__ import annotations

import numpy as np
import pytest

from services.trainer.data import Batches, TokenShard, eval_batches, unigram_loss


@pytest.fixture
def shard_path(tmp_path):
    path = tmp_path / "train.bin"
    np.arange(1000, dtype=np.uint16).__mod__(50).astype(np.uint16).tofile(path)
    return path


def test_windows_are_next_token_pairs_inside_the_shard(shard_path):
    shard = TokenShard(shard_path, block_size=8, vocab_size=50)
    x, y = Batches(shard, micro_batch=64, seed=1, rank=0).next()
    assert x.shape == y.shape == (64, 8)
    assert (y[:, :-1] == x[:, 1:]).all()
    assert ((x + 1) % 50 == y).all()  # the fixture's tokens count up modulo 50


def test_ranks_draw_different_windows_and_a_restored_stream_continues_exactly(shard_path):
    shard = TokenShard(shard_path, block_size=8, vocab_size=50)
    rank0, rank1 = Batches(shard, 4, seed=1, rank=0), Batches(shard, 4, seed=1, rank=1)
    assert not (rank0.next()[0] == rank1.next()[0]).all()
    state = rank0.state_dict()
    expected = [rank0.next()[0] for _ in range(3)]
    resumed = Batches(shard, 4, seed=1, rank=0)
    resumed.load_state_dict(state)
    assert all((resumed.next()[0] == e).all() for e in expected)


def test_validation_windows_are_the_same_at_every_evaluation(shard_path):
    shard = TokenShard(shard_path, block_size=8, vocab_size=50)
    first, second = list(eval_batches(shard, 3, 2, seed=5)), list(eval_batches(shard, 3, 2, seed=5))
    assert all((a[0] == b[0]).all() for a, b in zip(first, second))


def test_token_ids_beyond_the_vocabulary_are_refused(shard_path):
    with pytest.raises(ValueError, match="token id 49, outside the model's vocabulary of 40"):
        TokenShard(shard_path, block_size=8, vocab_size=40)


def test_a_shard_shorter_than_one_window_is_refused(tmp_path):
    path = tmp_path / "val.bin"
    np.zeros(8, dtype=np.uint16).tofile(path)
    with pytest.raises(ValueError, match="val.bin has 8 tokens, fewer than one context window"):
        TokenShard(path, block_size=8, vocab_size=10)


def test_odd_byte_count_is_not_a_uint16_shard(tmp_path):
    path = tmp_path / "train.bin"
    path.write_bytes(b"\x00" * 101)
    with pytest.raises(ValueError, match="not a whole number of uint16 tokens"):
        TokenShard(path, block_size=8, vocab_size=10)


def test_unigram_baseline_is_the_entropy_of_a_uniform_stream(shard_path):
    shard = TokenShard(shard_path, block_size=8, vocab_size=50)
    assert unigram_loss(shard, shard, 50) == pytest.approx(np.log(50), abs=1e-3)
