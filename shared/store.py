"""The artifact store: one interface, a local directory or an S3 bucket on a real MinIO server.

Writes are atomic per object (a temporary name, then a rename or a completed multipart upload),
so a reader never sees half an object. Publishing a whole run atomically is the manifest's job
(see ``shared.runs``): outputs first, ``manifest.json`` last.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shared.errors import AlsError
from shared.settings import StoreSettings

CHUNK = 8 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024


class StoreError(AlsError, RuntimeError):
    """The store could not do what was asked; the message names the store and the object."""


class InvalidKeyError(StoreError):
    pass


class ObjectNotFound(StoreError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    sha256: str


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store or confuse a listing."""
    reason = None
    if not isinstance(key, str) or not key:
        reason = "it is empty"
    elif key.startswith("/") or (len(key) > 1 and key[1] == ":"):
        reason = "it is absolute"
    elif "\\" in key:
        reason = "it contains a backslash"
    elif any(ord(c) < 32 or ord(c) == 127 for c in key):
        reason = "it contains a control character"
    elif any(part in ("", ".", "..") for part in key.split("/")):
        reason = "it has an empty, '.' or '..' path segment"
    elif len(key.encode()) > 900:
        reason = "it is longer than 900 bytes"
    elif any(len(part.encode()) > 255 for part in key.split("/")):
        reason = "a path segment is longer than 255 bytes (a file name on the local store)"
    if reason:
        raise InvalidKeyError(f"invalid artifact key {key!r}: {reason}")
    return key


class _HashingReader(io.RawIOBase):
    """Hashes a stream while an uploader reads it, so a large file is read once."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    """What every stage uses; ``LocalStore`` and ``S3Store`` implement it."""

    description: str

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        raise NotImplementedError

    def get_file(self, key: str, dest: Path) -> Path:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix`` (recursive), in lexical order."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def sha256(self, key: str) -> str:
        """Re-hash the stored bytes (what ``artifacts verify`` compares to the manifest)."""
        with tempfile.TemporaryDirectory() as tmp:
            return sha256_file(self.get_file(key, Path(tmp) / "object"))

    def put_bytes(self, key: str, data: bytes) -> ObjectInfo:
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(data)
            tmp.flush()
            return self.put_file(key, Path(tmp.name))

    def get_bytes(self, key: str) -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            return self.get_file(key, Path(tmp) / "object").read_bytes()


class LocalStore(ArtifactStore):
    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.description = f"local store at {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return ObjectInfo(key, size, digest.hexdigest())

    def get_file(self, key: str, dest: Path) -> Path:
        src = self._path(key)
        if not src.is_file():
            raise ObjectNotFound(f"{key!r} not found in {self.description}")
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
        return dest

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root / prefix.rstrip("/") if prefix else self.root
        if prefix:
            validate_key(prefix.rstrip("/"))
        if not base.exists():
            return iter(())
        keys = (
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")
        )
        return iter(sorted(k for k in keys if k.startswith(prefix)))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def sha256(self, key: str) -> str:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(f"{key!r} not found in {self.description}")
        return sha256_file(path)


class S3Store(ArtifactStore):
    """A bucket on a MinIO (or any S3) server through the ``minio`` client."""

    def __init__(self, settings: StoreSettings):
        import urllib3
        from minio import Minio

        if settings.access_key is None or settings.secret_key is None:
            raise StoreError(
                f"the s3 store at {settings.endpoint} needs credentials: "
                "set ALS_STORE__ACCESS_KEY and ALS_STORE__SECRET_KEY (make env writes them to .env)"
            )
        self.bucket = settings.bucket
        self.endpoint = settings.endpoint
        self.description = f"s3 store {settings.bucket!r} at {settings.endpoint}"
        # Few, quick retries: a stopped server must surface as an error in seconds, not minutes.
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=5, read=120),
            retries=urllib3.Retry(total=2, backoff_factor=0.3, status_forcelist=[500, 502, 503, 504]),
        )
        self.client = Minio(
            settings.endpoint,
            access_key=settings.access_key.get_secret_value(),
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            http_client=http,
        )
        self._ensure_bucket(settings.create_bucket)

    def _call(self, what: str, fn, *args, **kwargs):
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args, **kwargs)
        except S3Error as err:
            if err.code in ("NoSuchKey", "NoSuchObject"):
                raise ObjectNotFound(f"{what}: not found in {self.description}") from None
            if err.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
                raise StoreError(
                    f"{what}: the MinIO server at {self.endpoint} rejected the credentials ({err.code}); "
                    "check ALS_STORE__ACCESS_KEY / ALS_STORE__SECRET_KEY"
                ) from None
            raise StoreError(f"{what}: {self.description} answered {err.code}: {err.message}") from None
        except (HTTPError, OSError) as err:
            raise StoreError(
                f"{what}: cannot reach the MinIO server at {self.endpoint} ({type(err).__name__}: {err}); "
                "is it running? (make up, or als-lm doctor)"
            ) from None

    def _ensure_bucket(self, create: bool) -> None:
        if self._call("checking the bucket", self.client.bucket_exists, self.bucket):
            return
        if not create:
            raise StoreError(
                f"bucket {self.bucket!r} does not exist at {self.endpoint} and ALS_STORE__CREATE_BUCKET is false"
            )
        self._call(f"creating bucket {self.bucket!r}", self.client.make_bucket, self.bucket)

    def put_file(self, key: str, path: Path) -> ObjectInfo:
        validate_key(key)
        size = Path(path).stat().st_size
        with open(path, "rb") as fh:
            reader = _HashingReader(fh)
            # Multipart in PART_SIZE parts: a 1 GB file streams instead of sitting in memory.
            self._call(
                f"uploading {key!r}",
                self.client.put_object,
                self.bucket,
                key,
                reader,
                length=size,
                part_size=PART_SIZE,
            )
        return ObjectInfo(key, reader.size, reader.digest.hexdigest())

    def get_file(self, key: str, dest: Path) -> Path:
        validate_key(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        # fget_object downloads to a .part file and renames it when complete.
        self._call(f"downloading {key!r}", self.client.fget_object, self.bucket, key, str(dest))
        return dest

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._call(f"looking up {key!r}", self.client.stat_object, self.bucket, key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        if prefix:
            validate_key(prefix.rstrip("/"))
        objects = self._call(
            f"listing {prefix!r}",
            lambda: [o.object_name for o in self.client.list_objects(self.bucket, prefix=prefix, recursive=True)],
        )
        return iter(sorted(objects))

    def delete(self, key: str) -> None:
        validate_key(key)
        self._call(f"deleting {key!r}", self.client.remove_object, self.bucket, key)

    def sha256(self, key: str) -> str:
        validate_key(key)
        digest = hashlib.sha256()
        response = self._call(f"reading {key!r}", self.client.get_object, self.bucket, key)
        try:
            for chunk in response.stream(CHUNK):
                digest.update(chunk)
        finally:
            response.close()
            response.release_conn()
        return digest.hexdigest()


def open_store(settings: StoreSettings) -> ArtifactStore:
    if settings.backend == "local":
        return LocalStore(settings.root)
    return S3Store(settings)
