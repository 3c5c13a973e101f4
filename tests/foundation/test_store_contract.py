"""One contract, two backends: a directory and a bucket on a real MinIO server."""

from __future__ import annotations

import hashlib
import os
import re

import pytest

from shared import store as store_module
from shared.store import InvalidKeyError, LocalStore, ObjectNotFound, validate_key


def test_put_get_roundtrip_reports_size_and_sha256(store, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    info = store.put_file("stage/run/blob.bin", src)
    assert store.exists("stage/run/blob.bin")
    assert info.key == "stage/run/blob.bin" and info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    out = store.get_file("stage/run/blob.bin", tmp_path / "out" / "new" / "blob.bin")
    assert out.read_bytes() == data
    assert store.get_file("stage/run/blob.bin", out.with_name("again.bin")).read_bytes() == data
    assert store.sha256("stage/run/blob.bin") == info.sha256


def test_list_is_recursive_sorted_and_prefix_scoped(store):
    for key in ["b/2/x", "a/1/y", "a/1/sub/z", "ab/1/w"]:
        store.put_bytes(key, key.encode())
    assert list(store.list("a/")) == ["a/1/sub/z", "a/1/y"]
    assert list(store.list()) == ["a/1/sub/z", "a/1/y", "ab/1/w", "b/2/x"]
    assert list(store.list("nothing/")) == []


def test_missing_object_is_a_clear_not_found(store, tmp_path):
    assert not store.exists("nope/x")
    with pytest.raises(ObjectNotFound, match=f"nope/x.*{re.escape(store.description)}"):
        store.get_file("nope/x", tmp_path / "x")
    with pytest.raises(ObjectNotFound, match="nope/x"):
        store.sha256("nope/x")


def test_delete_removes_only_that_object(store):
    store.put_bytes("d/1/a", b"a")
    store.put_bytes("d/1/b", b"b")
    store.delete("d/1/a")
    store.delete("d/1/never-written")  # deleting what is not there is no error
    assert list(store.list("d/")) == ["d/1/b"]


@pytest.mark.parametrize(
    ("key", "reason"),
    [("../escape", "'..'"), ("a/../../b", "'..'"), ("/abs/path", "absolute"), ("a//b", "empty"), ("a/./b", "'.'"),
     ("tab\there", "control character"), ("nul\x00", "control character"), ("del\x7f", "control character"),
     ("C:/windows", "absolute"), ("C:", "absolute"), ("back\\slash", "backslash"), ("", "it is empty"),
     ("a/" + "b" * 256, "segment is longer than 255"), ("ddd" + "/c" * 449, "longer than 900 bytes")],
)
def test_bad_keys_are_refused_with_the_key_and_the_reason_named(store, key, reason):
    with pytest.raises(InvalidKeyError, match=f"invalid artifact key .*{re.escape(reason)}"):
        store.put_bytes(key, b"x")


def test_keys_at_the_limits_and_with_spaces_are_accepted():
    for key in ("a/" + "b" * 255, "dd" + "/c" * 449, "with space/x", "C/d"):
        assert validate_key(key) == key


def test_local_store_hides_temporary_files_and_counts_every_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "CHUNK", 1024)
    store = LocalStore(tmp_path / "new" / "artifacts")
    assert LocalStore(store.root).root == store.root  # opening an existing store is fine
    info = store.put_bytes("s/r/big.bin", os.urandom(5000))
    assert info.size == 5000 and store.sha256("s/r/big.bin") == info.sha256
    (store.root / "s" / "r" / ".big.bin.0123.tmp").write_bytes(b"half")  # a write in progress
    assert list(store.list()) == ["s/r/big.bin"]
