"""Publish/fetch throughput of the two artifact-store backends for one large artifact.

Both backends run in the same process on the same file: the local directory store, and a bucket
on a real MinIO server started on 127.0.0.1 (multipart upload, streamed). A plain ``cp`` of the
file is the reference for what the disk itself allows.

    .venv/bin/python benchmarks/bench_store.py --size-mb 1024
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared import runs, servers
from shared.settings import StoreSettings
from shared.store import LocalStore, S3Store


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, store, src: Path, scratch: Path, size_mb: float) -> None:
    writer = runs.RunWriter(store, "bench", {}, [])
    publish = timed(lambda: writer.put_file("blob.bin", src))
    manifest = writer.publish()
    fetch = timed(lambda: runs.fetch(store, manifest.output("blob.bin"), scratch / f"{name}.bin"))
    print(f"| {name} | {size_mb / publish:,.0f} MB/s ({publish:.1f} s) | {size_mb / fetch:,.0f} MB/s ({fetch:.1f} s) |")
    (scratch / f"{name}.bin").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ALS_BENCH_DIR")) as tmp:
        tmp = Path(tmp)
        src = tmp / "artifact.bin"
        with open(src, "wb") as fh:  # random bytes: nothing along the way can compress them
            fh.writelines(os.urandom(1024 * 1024) for _ in range(args.size_mb))
        print(f"artifact: {args.size_mb} MB of random bytes; publish includes sha256, fetch includes its check\n")
        print("| backend | publish | fetch (+ verify) |\n|---|---|---|")
        copy = timed(lambda: shutil.copyfile(src, tmp / "copy.bin"))
        print(f"| reference: plain file copy | {args.size_mb / copy:,.0f} MB/s ({copy:.1f} s) | — |")
        (tmp / "copy.bin").unlink()
        measure("local", LocalStore(tmp / "local"), src, tmp, args.size_mb)
        shutil.rmtree(tmp / "local")
        with servers.minio(tmp / "minio") as server:
            store = S3Store(StoreSettings(backend="s3", endpoint=server.endpoint, bucket="bench",
                                          access_key=server.access_key, secret_key=server.secret_key))
            measure("s3 (MinIO on 127.0.0.1)", store, src, tmp, args.size_mb)


if __name__ == "__main__":
    main()
