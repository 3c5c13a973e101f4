"""Stage runs: write outputs under ``<stage>/<run_id>/``, then publish ``manifest.json`` last.

A run without a manifest does not exist for readers, so a crash at any point leaves nothing
half-published. A run whose stage, settings and inputs hash to an existing manifest is skipped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared import stages as declared
from shared.errors import AlsError
from shared.manifest import InputRef, Manifest, OutputRef
from shared.store import ArtifactStore, ObjectNotFound, StoreError, sha256_file, validate_key

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


class RunNotFound(AlsError, LookupError):
    """No published run of a stage that another stage needs."""


class IntegrityError(AlsError, RuntimeError):
    """An object's bytes do not match the hash its manifest recorded."""


def code_version() -> str:
    """The git revision, or ``ALS_CODE_VERSION`` inside an image built without ``.git``."""
    if env := os.environ.get("ALS_CODE_VERSION"):
        return env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _content_name(ref: InputRef) -> str:
    """An input's name without the producing run's id: equal content gives an equal fingerprint,
    whichever run (or store) produced it."""
    prefix = ref.run + "/"
    return ref.key.removeprefix(prefix)


def fingerprint(stage: str, settings: dict[str, Any], inputs: Iterable[InputRef]) -> str:
    payload = {
        "stage": stage,
        "settings": settings,
        "inputs": sorted((_content_name(i), i.sha256) for i in inputs),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def read_manifest(store: ArtifactStore, key: str) -> Manifest:
    try:
        return Manifest.model_validate_json(store.get_bytes(key))
    except ValidationError as err:
        raise IntegrityError(f"{key} in {store.description} is not a valid manifest: {err}") from None


def runs(store: ArtifactStore, stage: str) -> list[Manifest]:
    """Published runs of ``stage``, oldest first."""
    validate_key(stage)
    keys = [k for k in store.list(f"{stage}/") if k.count("/") == 2 and k.endswith("/" + MANIFEST)]
    return sorted((read_manifest(store, k) for k in keys), key=lambda m: m.created)


def stages(store: ArtifactStore) -> list[str]:
    return sorted({k.split("/", 1)[0] for k in store.list() if k.endswith("/" + MANIFEST) and k.count("/") == 2})


def latest(store: ArtifactStore, stage: str) -> Manifest:
    found = runs(store, stage)
    if not found:
        raise RunNotFound(f"no published run of stage {stage!r} in {store.description}; {declared.hint(stage)}")
    return found[-1]


def resolve(store: ArtifactStore, ref: str) -> Manifest:
    """``<stage>`` (the latest run) or ``<stage>/<run_id>``."""
    if "/" not in ref:
        return latest(store, ref)
    stage, run_id = ref.split("/", 1)
    try:
        return read_manifest(store, f"{stage}/{run_id}/{MANIFEST}")
    except ObjectNotFound:
        raise RunNotFound(f"run {ref!r} is not published in {store.description}") from None


def inputs_from(manifest: Manifest, names: Iterable[str] | None = None) -> list[InputRef]:
    chosen = manifest.outputs if names is None else [manifest.output(n) for n in names]
    return [InputRef(key=o.key, sha256=o.sha256, run=manifest.run, name=o.name) for o in chosen]


def fetch(store: ArtifactStore, ref: OutputRef | InputRef, dest: Path) -> Path:
    """Download one object and check it against its recorded hash: files are validated, not trusted."""
    path = store.get_file(ref.key, dest)
    actual = sha256_file(path)
    if actual != ref.sha256:
        path.unlink(missing_ok=True)
        raise IntegrityError(
            f"{ref.key} in {store.description} is corrupted: sha256 {actual[:12]}… != recorded {ref.sha256[:12]}…"
        )
    return path


def verify(store: ArtifactStore, manifest: Manifest) -> list[str]:
    """Problems found by re-hashing every output of a run (empty when it is intact)."""
    problems = []
    for out in manifest.outputs:
        try:
            actual = store.sha256(out.key)
        except ObjectNotFound:
            problems.append(f"{out.key}: missing")
            continue
        if actual != out.sha256:
            problems.append(f"{out.key}: sha256 {actual[:12]}… != recorded {out.sha256[:12]}…")
    return problems


class RunWriter:
    """Collects a run's outputs; ``publish`` writes the manifest after all of them."""

    def __init__(self, store: ArtifactStore, stage: str, settings: dict[str, Any], inputs: list[InputRef]):
        self.store, self.stage, self.settings, self.inputs = store, validate_key(stage), settings, inputs
        self.run_id = new_run_id()
        self.fingerprint = fingerprint(stage, settings, inputs)
        self.outputs: dict[str, OutputRef] = {}
        self.metrics: dict[str, Any] = {}

    @property
    def prefix(self) -> str:
        return f"{self.stage}/{self.run_id}/"

    def key(self, name: str) -> str:
        if name == MANIFEST:
            raise StoreError(f"{MANIFEST} is written by publish(), not as an output")
        return validate_key(self.prefix + name)

    def put_file(self, name: str, path: Path) -> OutputRef:
        info = self.store.put_file(self.key(name), path)
        ref = OutputRef(key=info.key, size=info.size, sha256=info.sha256)
        self.outputs[name] = ref
        return ref

    def put_bytes(self, name: str, data: bytes) -> OutputRef:
        info = self.store.put_bytes(self.key(name), data)
        ref = OutputRef(key=info.key, size=info.size, sha256=info.sha256)
        self.outputs[name] = ref
        return ref

    def put_json(self, name: str, obj: Any) -> OutputRef:
        return self.put_bytes(name, json.dumps(obj, indent=2, sort_keys=True, default=str).encode() + b"\n")

    def put_tree(self, name: str, directory: Path) -> list[OutputRef]:
        """Every file under ``directory`` as ``name/<relative path>``."""
        return [
            self.put_file(f"{name}/{p.relative_to(directory).as_posix()}", p)
            for p in sorted(Path(directory).rglob("*"))
            if p.is_file()
        ]

    def publish(self) -> Manifest:
        manifest = Manifest(
            stage=self.stage,
            run_id=self.run_id,
            created=datetime.now(UTC),
            code_version=code_version(),
            fingerprint=self.fingerprint,
            settings=self.settings,
            inputs=self.inputs,
            outputs=list(self.outputs.values()),
            metrics=self.metrics,
        )
        self.store.put_bytes(self.prefix + MANIFEST, manifest.model_dump_json(indent=2).encode())
        return manifest

    def discard(self) -> None:
        """Best-effort removal of an unpublished run's outputs; invisible to readers either way."""
        for ref in self.outputs.values():
            try:
                self.store.delete(ref.key)
            except StoreError as err:
                log.warning("could not remove unpublished %s: %s", ref.key, err)


def find_published(store: ArtifactStore, stage: str, probe: str) -> Manifest | None:
    """The newest published run of ``stage`` with fingerprint ``probe``: the run that makes a new one
    unnecessary (logged as a skip), or None."""
    for manifest in reversed(runs(store, stage)):
        if manifest.fingerprint == probe:
            log.info("%s: unchanged since run %s, skipped (use --force to rerun)", stage, manifest.run_id)
            return manifest
    return None


def run_stage(
    store: ArtifactStore,
    stage: str,
    settings: dict[str, Any],
    inputs: list[InputRef],
    body: Callable[[RunWriter, Path], None],
    *,
    work_dir: Path,
    force: bool = False,
) -> tuple[Manifest, bool]:
    """Run ``body`` unless an identical run is published; return the manifest and whether it ran.

    ``body`` receives the writer and a private scratch directory. It puts outputs and sets
    ``writer.metrics``; if it raises, nothing is published and its outputs are discarded.
    """
    if not force and (published := find_published(store, stage, fingerprint(stage, settings, inputs))):
        return published, False
    writer = RunWriter(store, stage, settings, inputs)
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{stage}-", dir=work_dir) as scratch:
        try:
            body(writer, Path(scratch))
        except BaseException:
            writer.discard()
            raise
        manifest = writer.publish()
    log.info("%s: published run %s (%d outputs)", stage, manifest.run_id, len(manifest.outputs))
    return manifest, True
