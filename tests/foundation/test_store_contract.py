"""One contract, two backends: a directory and a bucket on a real MinIO server."""

from __future__ import annotations

import hashlib
import os

import pytest

from shared.store import InvalidKeyError, ObjectNotFound


def test_put_get_roundtrip_reports_size_and_sha256(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    info = store.put_file("stage/run/blob.bin", src)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    out = store.get_file("stage/run/blob.bin", tmp_path / "out" / "blob.bin")
    assert out.read_bytes() == data
    assert store.sha256("stage/run/blob.bin") == info.sha256


def test_list_is_recursive_sorted_and_prefix_scoped(store):
    for key in ["b/2/x", "a/1/y", "a/1/sub/z", "ab/1/w"]:
        store.put_bytes(key, key.encode())
    assert list(store.list("a/")) == ["a/1/sub/z", "a/1/y"]
    assert list(store.list()) == ["a/1/sub/z", "a/1/y", "ab/1/w", "b/2/x"]


def test_missing_object_is_a_clear_not_found(store, tmp_path):
    assert not store.exists("nope/x")
    with pytest.raises(ObjectNotFound, match="nope/x"):
        store.get_file("nope/x", tmp_path / "x")


def test_delete_removes_only_that_object(store):
    store.put_bytes("d/1/a", b"a")
    store.put_bytes("d/1/b", b"b")
    store.delete("d/1/a")
    assert list(store.list("d/")) == ["d/1/b"]


@pytest.mark.parametrize(
    "key",
    ["../escape", "a/../../b", "/abs/path", "a//b", "a/./b", "tab\there", "nul\x00", "C:/windows", "back\\slash", ""],
)
def test_bad_keys_are_refused_with_the_key_named(store, key):
    with pytest.raises(InvalidKeyError, match="invalid artifact key"):
        store.put_bytes(key, b"x")
