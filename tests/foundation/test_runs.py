"""Publishing runs: outputs first, manifest last; skip when unchanged; verify finds corruption."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared import runs
from shared.errors import MissingArtifact
from shared.manifest import InputRef, Manifest
from shared.store import StoreError


def _body(payload: bytes):
    def body(writer, scratch):
        (scratch / "out.txt").write_bytes(payload)
        writer.put_file("out.txt", scratch / "out.txt")
        writer.put_json("nested/info.json", {"n": len(payload)})
        writer.metrics["n"] = len(payload)

    return body


def test_published_run_has_typed_manifest_with_hashes(store, tmp_path):
    manifest, ran = runs.run_stage(store, "demo", {"k": 1}, [], _body(b"hello"), work_dir=tmp_path)
    assert ran
    assert runs.latest(store, "demo").run_id == manifest.run_id
    assert {o.name for o in manifest.outputs} == {"out.txt", "nested/info.json"}
    assert manifest.metrics == {"n": 5}
    assert manifest.code_version
    assert runs.verify(store, manifest) == []


def test_unchanged_stage_is_skipped_and_changed_settings_rerun(store, tmp_path):
    first, _ = runs.run_stage(store, "demo", {"k": 1}, [], _body(b"a"), work_dir=tmp_path)
    again, ran = runs.run_stage(store, "demo", {"k": 1}, [], _body(b"a"), work_dir=tmp_path)
    assert not ran and again.run_id == first.run_id
    forced, ran = runs.run_stage(store, "demo", {"k": 1}, [], _body(b"a"), work_dir=tmp_path, force=True)
    assert ran and forced.run_id != first.run_id
    changed, ran = runs.run_stage(store, "demo", {"k": 2}, [], _body(b"a"), work_dir=tmp_path)
    assert ran and changed.fingerprint != first.fingerprint


def test_changed_input_hash_reruns_downstream(store, tmp_path):
    up, _ = runs.run_stage(store, "up", {}, [], _body(b"v1"), work_dir=tmp_path)
    down, _ = runs.run_stage(store, "down", {}, runs.inputs_from(up), _body(b"x"), work_dir=tmp_path)
    up2, _ = runs.run_stage(store, "up", {}, [], _body(b"v2"), work_dir=tmp_path, force=True)
    down2, ran = runs.run_stage(store, "down", {}, runs.inputs_from(up2), _body(b"x"), work_dir=tmp_path)
    assert ran and down2.inputs[0].run == up2.run != down.inputs[0].run


def test_failing_body_publishes_nothing_and_discards_outputs(store, tmp_path):
    def body(writer, scratch):
        writer.put_bytes("partial.bin", b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        runs.run_stage(store, "demo", {}, [], body, work_dir=tmp_path)
    assert runs.runs(store, "demo") == []
    assert list(store.list("demo/")) == []
    with pytest.raises(runs.RunNotFound, match="no published run of stage 'demo'"):
        runs.latest(store, "demo")


def test_sigkill_before_manifest_leaves_run_invisible(tmp_path, repo_root):
    root = tmp_path / "store"
    script = textwrap.dedent(
        f"""
        import os
        from shared.store import LocalStore
        from shared.runs import RunWriter
        w = RunWriter(LocalStore({str(root)!r}), "crashy", {{}}, [])
        w.put_bytes("a.bin", b"x" * 1000)
        os.kill(os.getpid(), 9)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=repo_root, check=False)
    assert proc.returncode == -9
    from shared.store import LocalStore

    store = LocalStore(root)
    assert list(store.list("crashy/"))  # the output is there…
    assert runs.runs(store, "crashy") == []  # …but no run exists for readers


def test_verify_reports_a_corrupted_object(store, tmp_path):
    manifest, _ = runs.run_stage(store, "demo", {}, [], _body(b"original"), work_dir=tmp_path)
    store.put_bytes(manifest.output("out.txt").key, b"tampered")
    problems = runs.verify(store, manifest)
    assert len(problems) == 1 and "out.txt" in problems[0] and "sha256" in problems[0]
    with pytest.raises(runs.IntegrityError, match="corrupted"):
        runs.fetch(store, manifest.output("out.txt"), tmp_path / "x")


def test_fingerprint_ignores_input_order_but_not_content():
    a = InputRef(key="s/r/a", sha256="0" * 64, run="s/r")
    b = InputRef(key="s/r/b", sha256="1" * 64, run="s/r")
    assert runs.fingerprint("x", {}, [a, b]) == runs.fingerprint("x", {}, [b, a])
    b2 = b.model_copy(update={"sha256": "2" * 64})
    assert runs.fingerprint("x", {}, [a, b]) != runs.fingerprint("x", {}, [a, b2])


def test_fingerprint_ignores_the_order_of_settings():
    assert runs.fingerprint("x", {"a": 1, "b": 2}, []) == runs.fingerprint("x", {"b": 2, "a": 1}, [])


def test_fingerprint_depends_on_content_not_on_the_producing_run():
    a = InputRef(key="up/run-1/data.bin", sha256="3" * 64, run="up/run-1")
    b = InputRef(key="up/run-2/data.bin", sha256="3" * 64, run="up/run-2")
    assert runs.fingerprint("x", {}, [a]) == runs.fingerprint("x", {}, [b])


def test_inputs_carry_their_output_name_and_are_found_by_it(local_store, tmp_path):
    up, _ = runs.run_stage(local_store, "up", {}, [], _body(b"u"), work_dir=tmp_path)
    other, _ = runs.run_stage(local_store, "other", {}, [], _body(b"o"), work_dir=tmp_path)
    down, _ = runs.run_stage(local_store, "down", {}, [*runs.inputs_from(up, ["nested/info.json"]),
                                                      *runs.inputs_from(other, ["out.txt"])],
                             _body(b"d"), work_dir=tmp_path)
    assert [i.name for i in down.inputs] == ["nested/info.json", "out.txt"]
    assert down.input("nested/info.json").run == up.run
    assert down.upstream("other") == other.run
    with pytest.raises(MissingArtifact, match="records 0 inputs 'missing.txt'"):
        down.input("missing.txt")
    with pytest.raises(MissingArtifact, match="read from 0 absent runs"):
        down.upstream("absent")


def test_a_manifest_written_before_inputs_had_names_still_loads_and_resolves_them():
    old = {"stage": "down", "run_id": "r2", "created": "2026-12-01T00:00:00Z", "code_version": "x",
           "fingerprint": "f", "settings": {}, "outputs": [],
           "inputs": [{"key": "up/r1/docs/part-00000.jsonl", "sha256": "0" * 64, "run": "up/r1"},
                      {"key": "bundled/questions.json", "sha256": "1" * 64, "run": "bundled"}]}
    manifest = Manifest.model_validate(old)
    assert manifest.input("docs/part-00000.jsonl").run == "up/r1"
    assert manifest.input("questions.json").stage == "bundled"
    assert manifest.upstream("up") == "up/r1"


def test_an_identical_run_is_found_by_its_fingerprint(local_store, tmp_path):
    first, _ = runs.run_stage(local_store, "demo", {"k": 1}, [], _body(b"a"), work_dir=tmp_path)
    assert runs.find_published(local_store, "demo", first.fingerprint) == first
    assert runs.find_published(local_store, "demo", runs.fingerprint("demo", {"k": 2}, [])) is None


def test_verify_lists_every_missing_output(store, tmp_path):
    manifest, _ = runs.run_stage(store, "demo", {}, [], _body(b"gone"), work_dir=tmp_path)
    for out in manifest.outputs:
        store.delete(out.key)
    assert runs.verify(store, manifest) == [f"{out.key}: missing" for out in manifest.outputs]


def test_a_stage_makes_its_nested_work_dir_and_a_run_id_is_time_then_six_hex_digits(local_store, tmp_path):
    work = tmp_path / "new" / "work"
    seen = []

    def body(writer, scratch):
        seen.append(scratch)
        _body(b"x")(writer, scratch)

    manifest, ran = runs.run_stage(local_store, "demo", {}, [], body, work_dir=work)
    # The scratch folder lies in the work dir (its disk, not /tmp), named after the stage.
    assert ran and seen[0].parent == work and seen[0].name.startswith("demo-")
    assert re.fullmatch(r"\d{8}T\d{12}Z-[0-9a-f]{6}", manifest.run_id), manifest.run_id


def test_the_manifest_is_not_an_output_and_a_corrupt_one_is_named(local_store):
    writer = runs.RunWriter(local_store, "demo", {}, [])
    with pytest.raises(StoreError, match="manifest.json is written by publish"):
        writer.put_bytes("manifest.json", b"{}")
    local_store.put_bytes("demo/r1/manifest.json", b"{not json")
    with pytest.raises(runs.IntegrityError, match="demo/r1/manifest.json in local store .* is not a valid manifest"):
        runs.runs(local_store, "demo")


def test_put_json_writes_sorted_indented_json_ending_in_a_newline(local_store):
    ref = runs.RunWriter(local_store, "demo", {}, []).put_json("x.json", {"b": Path("p"), "a": [1]})
    assert local_store.get_bytes(ref.key) == b'{\n  "a": [\n    1\n  ],\n  "b": "p"\n}\n'
