"""Faults against the real MinIO server: nothing published is ever half there or lost."""

from __future__ import annotations

import hashlib
import random

import pytest

from shared import runs, servers
from shared.settings import StoreSettings
from shared.store import PART_SIZE, S3Store, StoreError
from tests.conftest import s3_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def own_minio(tmp_path):
    """A server this test may stop and restart (same port, credentials and data)."""
    server = servers.minio(tmp_path / "minio")
    server.start()
    yield server
    server.stop()


def test_server_stopped_mid_publish_fails_clearly_and_retry_succeeds(own_minio, tmp_path):
    store = S3Store(s3_settings(own_minio, "faults"))

    def body(writer, scratch):
        writer.put_bytes("first.bin", b"1" * 1000)
        own_minio.stop()
        writer.put_bytes("second.bin", b"2" * 1000)

    with pytest.raises(StoreError, match=f"uploading 'stage/.*/second.bin': cannot reach the MinIO server at "
                                         f"{own_minio.endpoint}"):
        runs.run_stage(store, "stage", {"v": 1}, [], body, work_dir=tmp_path)
    # Every call names what it was doing when the server was gone, not only the upload.
    for what, call in (("listing 'stage/'", lambda: store.list("stage/")),
                       ("looking up 'stage/x'", lambda: store.exists("stage/x")),
                       ("deleting 'stage/x'", lambda: store.delete("stage/x"))):
        with pytest.raises(StoreError, match=f"{what}: cannot reach the MinIO server"):
            call()

    own_minio.start()
    assert runs.runs(store, "stage") == []  # no manifest was written

    def good(writer, scratch):
        writer.put_bytes("first.bin", b"1" * 1000)
        writer.put_bytes("second.bin", b"2" * 1000)

    manifest, ran = runs.run_stage(store, "stage", {"v": 1}, [], good, work_dir=tmp_path)
    assert ran and runs.verify(store, manifest) == []


@pytest.mark.parametrize("missing", ["access_key", "secret_key"])
def test_either_missing_credential_is_refused_before_connecting(missing):
    settings = StoreSettings(backend="s3", endpoint=f"127.0.0.1:{servers.free_port()}", bucket="b",
                             **{"access_key": "a", "secret_key": "s", missing: None})
    with pytest.raises(StoreError, match="needs credentials: set ALS_STORE__ACCESS_KEY and ALS_STORE__SECRET_KEY"):
        S3Store(settings)


@pytest.mark.parametrize("wrong", ["secret_key", "access_key"])  # SignatureDoesNotMatch, InvalidAccessKeyId
def test_wrong_credentials_name_the_endpoint(minio_server, wrong):
    settings = s3_settings(minio_server, "creds")
    settings = settings.model_validate({**settings.model_dump(), "secret_key": minio_server.secret_key,
                                        "access_key": minio_server.access_key, wrong: "wrong-key-1234"})
    with pytest.raises(StoreError, match=f"checking the bucket: the MinIO server at {minio_server.endpoint} rejected "
                                         r"the credentials \(\w+\); check ALS_STORE__ACCESS_KEY / ALS_STORE__SECRET_KEY"):
        S3Store(settings)


def test_missing_bucket_is_created_when_allowed_and_refused_otherwise(minio_server):
    with pytest.raises(StoreError, match="bucket 'absent-bucket' does not exist"):
        S3Store(s3_settings(minio_server, "absent-bucket", create_bucket=False))
    store = S3Store(s3_settings(minio_server, "created-bucket", create_bucket=True))
    store.put_bytes("a/b", b"ok")
    assert store.get_bytes("a/b") == b"ok"
    # A bucket removed under a running stage: the server's own error code, with what was being done.
    store.delete("a/b")
    store.client.remove_bucket("created-bucket")
    with pytest.raises(StoreError, match="uploading 'a/c': s3 store 'created-bucket' at .* answered NoSuchBucket"):
        store.put_bytes("a/c", b"late")


def test_unreachable_endpoint_is_a_clear_error():
    port = servers.free_port()
    settings = s3_settings(
        servers.MinioServer(name="x", argv=[], base_url="", health_path="", log_path=None,
                            endpoint=f"127.0.0.1:{port}", access_key="a", secret_key="b"),
        "unreachable",
    )
    with pytest.raises(StoreError, match=f"checking the bucket: cannot reach the MinIO server at 127.0.0.1:{port} "
                                         r"\(\w+: .*\); is it running\? \(make up, or als-lm doctor\)"):
        S3Store(settings)


def test_large_upload_streams_in_parts(minio_server, tmp_path):
    store = S3Store(s3_settings(minio_server, "large"))
    data = random.Random(0).randbytes(40 * 1024 * 1024)  # no two parts alike: order and duplicates show
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    info = store.put_file("big/run/big.bin", big)
    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.sha256("big/run/big.bin") == info.sha256
    # S3's ETag of a multipart upload is the MD5 of its parts' MD5s, then "-<parts>": three parts of
    # PART_SIZE, in this order, is what was uploaded.
    parts = [data[i:i + PART_SIZE] for i in range(0, len(data), PART_SIZE)]
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"
    assert len(parts) == 3
    assert store.client.stat_object(store.bucket, "big/run/big.bin").etag.strip('"') == expected
    assert store.get_file("big/run/big.bin", tmp_path / "back.bin").read_bytes() == data
