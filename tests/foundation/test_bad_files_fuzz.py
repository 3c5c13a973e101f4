"""Bad files never end in a traceback: every command that takes a file path, fed what users pass by mistake.

Random bytes, a valid file in the wrong encoding (UTF-16 without a byte-order mark, Latin-1),
truncated and deeply nested structures go through ``als-lm``'s own ``main()`` (so its handling of
expected errors is what is tested), a few through a real process. Each must exit non-zero with
exactly one line on standard error, no traceback, and nothing published to the store or written as
output. Hypothesis runs a fixed, derandomized budget of examples per reader so CI time stays flat.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from als_lm.cli import main
from services.evaluator.settings import BENCHMARK
from services.scraper.parsing import Malformed, ctgov, eutils, jats, mediawiki, webpage
from services.scraper.sources import load_sources
from shared.errors import InvalidInput

REPO = Path(__file__).resolve().parents[2]
TRAIN_CONFIG = REPO / "services" / "trainer" / "configs" / "tiny-cpu.yaml"
EXPERIMENT_CONFIG = REPO / "services" / "trainer" / "configs" / "experiment-cpu.yaml"
DEEPSPEED_CONFIG = REPO / "services" / "trainer" / "configs" / "deepspeed" / "zero0.json"
SOURCES = REPO / "services" / "scraper" / "sources.yaml"

FUZZ = settings(max_examples=12, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

VALID_BENCHMARK = json.dumps(json.loads(BENCHMARK.read_text())[:3], indent=2, ensure_ascii=False)
VALID_RESPONSES = "".join(json.dumps({"id": item["id"], "response": "riluzole"}) + "\n"
                          for item in json.loads(VALID_BENCHMARK))


def _with_non_ascii(text: str) -> str:
    """Latin-1 only differs from UTF-8 beyond ASCII: give the text a character that is."""
    return text.replace("riluzole", "riluzole (café)", 1) if "riluzole" in text else text + "\n# café\n"


def wrong_encoding(valid: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from(["utf-16-le", "utf-16-be", "latin-1"]).map(
        lambda codec: (_with_non_ascii(valid) if codec == "latin-1" else valid).encode(codec))


def truncated(valid: str) -> st.SearchStrategy[bytes]:
    """Cut inside the document (never at its end), so what is left is incomplete."""
    data = valid.encode()
    return st.integers(1, len(data.rstrip()) - 2).map(lambda n: data[:n])


@st.composite
def nested(draw, yaml: bool = False) -> bytes:
    """Lists or mappings nested far deeper than any real file (closed or not); in YAML also block style."""
    depth = draw(st.integers(200, 20000))
    kind = draw(st.sampled_from(["list", "mapping", "unclosed", *(["block"] if yaml else [])]))
    if kind == "list":
        return ("[" * depth + "]" * depth).encode()
    if kind == "mapping":
        return ('{"a": ' * depth + "1" + "}" * depth).encode()
    if kind == "unclosed":
        return ("[" * depth).encode()
    return ("a:\n" + "".join(" " * i + "-\n" for i in range(1, 300))).encode()


def random_bytes() -> st.SearchStrategy[bytes]:
    """Bytes that are not UTF-8 (a leading continuation byte), so no reader can take them for a valid file."""
    return st.binary(max_size=400).map(lambda b: b"\x80" + b)


def bad_json(valid: str) -> st.SearchStrategy[bytes]:
    return st.one_of(random_bytes(), wrong_encoding(valid), truncated(valid), nested())


def bad_yaml(valid: str) -> st.SearchStrategy[bytes]:
    """Truncated YAML can still be a valid (shorter) config, so the YAML is broken inside a flow list."""
    broken = st.sampled_from(["max_steps: [1,2\n", "train: {preset: tiny, max_steps: [1,2\n", "a: b: c\n",
                              "\tpreset: tiny\n", "preset: 'tiny\n"]).map(str.encode)
    return st.one_of(random_bytes(), wrong_encoding(valid), nested(yaml=True), broken)


@contextmanager
def workspace(monkeypatch, **env: str) -> Iterator[Path]:
    """A fresh directory per example: its own store, work dir and current directory (for ``.env``);
    ``env`` names paths under it."""
    with tempfile.TemporaryDirectory() as tmp, monkeypatch.context() as m:
        root = Path(tmp)
        for name, value in {"ALS_STORE__ROOT": "store", "ALS_WORK_DIR": "work", **env}.items():
            m.setenv(name, str(root / value))
        m.chdir(root)
        yield root


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """``als-lm ARGS`` in-process through ``main()``; its exit status and standard error."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["als-lm", "-q", *args])
    try:
        main()
    except SystemExit as exited:
        return exited.code, capsys.readouterr().err
    return 0, capsys.readouterr().err


def assert_refused(code: int, err: str, root: Path) -> None:
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    published = list((root / "store").rglob("manifest.json")) if (root / "store").exists() else []
    assert published == []


@FUZZ
@given(data=bad_json(VALID_BENCHMARK))
def test_eval_validate_benchmark(monkeypatch, capsys, data):
    with workspace(monkeypatch) as root:
        (root / "bench.json").write_bytes(data)
        assert_refused(*run_main(monkeypatch, capsys, "eval", "validate", "--benchmark", "bench.json"), root)


@FUZZ
@given(data=bad_json(VALID_BENCHMARK), side=st.sampled_from(["benchmark", "responses"]))
def test_eval_score_benchmark_and_responses(monkeypatch, capsys, data, side):
    with workspace(monkeypatch) as root:
        files = {"benchmark": VALID_BENCHMARK.encode(), "responses": VALID_RESPONSES.encode(), side: data}
        (root / "bench.json").write_bytes(files["benchmark"])
        (root / "r.jsonl").write_bytes(files["responses"])
        code, err = run_main(monkeypatch, capsys, "eval", "score", "--benchmark", "bench.json",
                             "--responses", "r.jsonl", "--output", "out/scores.json")
        assert_refused(code, err, root)
        assert not (root / "out" / "scores.json").exists()


@FUZZ
@given(data=st.one_of(random_bytes(), wrong_encoding("Riluzole inhibits glutamate release.\n\nSOD1 ...\n")))
def test_eval_validate_corpus(monkeypatch, capsys, data):
    with workspace(monkeypatch) as root:
        (root / "bench.json").write_text(VALID_BENCHMARK)
        (root / "corpus.txt").write_bytes(data)
        assert_refused(*run_main(monkeypatch, capsys, "eval", "validate", "--benchmark", "bench.json",
                                 "--corpus", "corpus.txt"), root)


@FUZZ
@given(data=bad_yaml(TRAIN_CONFIG.read_text()))
def test_train_config(monkeypatch, capsys, data):
    with workspace(monkeypatch) as root:
        (root / "train.yaml").write_bytes(data)
        assert_refused(*run_main(monkeypatch, capsys, "train", "--config", "train.yaml"), root)


@FUZZ
@given(data=bad_yaml(EXPERIMENT_CONFIG.read_text()))
def test_experiment_config(monkeypatch, capsys, data):
    with workspace(monkeypatch) as root:
        (root / "experiment.yaml").write_bytes(data)
        assert_refused(*run_main(monkeypatch, capsys, "experiment", "--config", "experiment.yaml",
                                 "--root", "exp"), root)
        assert not (root / "exp").exists()


@FUZZ
@given(data=st.one_of(random_bytes(), wrong_encoding("ALS_SEED=7\nALS_LOG_LEVEL=INFO\n"),
                      st.sampled_from([b"ALS_SEED=7\n'unclosed\n", b"\xef\xbb\xbfALS_SEED=7\n",
                                       b"ALS_STORE={not json\n", b"ALS_LOG_LEVEL=LOUD\n"])))
def test_settings_file(monkeypatch, capsys, data):
    with workspace(monkeypatch) as root:
        (root / ".env").write_bytes(data)
        assert_refused(*run_main(monkeypatch, capsys, "config"), root)


@FUZZ
@given(data=bad_json('{"id": "a", "source": "s", "url": "u", "title": "t", "text": "ALS text", '
                     '"date_accessed": "2026-01-01", "license": "MIT"}\n'))
def test_scrape_sample_fixture(monkeypatch, capsys, data):
    with workspace(monkeypatch, ALS_SCRAPE__SAMPLE_DIR="sample") as root:
        (root / "sample").mkdir()
        (root / "sample" / "docs.jsonl").write_bytes(data)
        assert_refused(*run_main(monkeypatch, capsys, "scrape", "sample"), root)


@FUZZ
@given(data=bad_yaml(SOURCES.read_text()))
def test_web_source_list(tmp_path, data):
    """``als-lm scrape web`` reads its list first; a valid one would start a crawl, so the reader is called."""
    path = tmp_path / "sources.yaml"
    path.write_bytes(data)
    with pytest.raises(InvalidInput) as err:
        load_sources(path)
    assert "\n" not in str(err.value)


@FUZZ
@given(data=bad_json(DEEPSPEED_CONFIG.read_text()))
def test_deepspeed_config(tmp_path, data):
    """``train --deepspeed-config`` is read once the tokenize run is found, so the reader is called."""
    from services.trainer.settings import TrainConfig
    from services.trainer.train import deepspeed_config

    path = tmp_path / "ds.json"
    path.write_bytes(data)
    with pytest.raises(InvalidInput) as err:
        deepspeed_config(TrainConfig(deepspeed_config=path), "cpu", "fp32")
    assert "\n" not in str(err.value)


PARSERS = [ctgov.parse_studies_page, eutils.parse_esearch, jats.parse_articleset, mediawiki.parse_query,
           lambda body: webpage.main_text(body, "utf-8", "https://example.org/als", 40)]
FIXTURES = [REPO / "tests" / "scraper" / "fixtures" / name for name in ("ctgov", "pmc", "pmc", "wikipedia", "web")]


@FUZZ
@given(which=st.integers(0, len(PARSERS) - 1), how=st.sampled_from(["random", "truncated", "nested", "utf-16"]),
       data=st.data())
def test_spider_parsers(which, how, data):
    """Recorded responses broken every way: a parser returns documents or raises ``Malformed``, nothing else."""
    recorded = sorted(p for p in FIXTURES[which].rglob("*") if p.is_file())
    body = data.draw(st.sampled_from(recorded)).read_bytes() if recorded else b"{}"
    if how == "random":
        body = data.draw(st.binary(max_size=400))
    elif how == "truncated":
        body = body[: data.draw(st.integers(0, max(0, len(body) - 1)))]
    elif how == "nested":
        depth = data.draw(st.integers(200, 20000))
        body = data.draw(st.sampled_from([b"[" * depth, b"<a>" * depth, b'{"query": ' * depth]))
    else:
        body = body.decode("utf-8", "replace").encode("utf-16")
    try:
        PARSERS[which](body)
    except Malformed:
        pass  # the spider records it as rejected and goes on


KEY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=40)


@FUZZ
@given(stage=st.one_of(KEY_TEXT, st.sampled_from(["../x", "a/b", "/abs", "..", "a\\b", "x" * 300, "-x"])),
       name=st.one_of(KEY_TEXT, st.sampled_from(["manifest.json", "..", "a\x01b"])))
def test_artifacts_put_and_get_keys(monkeypatch, capsys, stage, name):
    """Any stage name or output name: published under a safe key, or refused in one line with nothing uploaded."""
    with workspace(monkeypatch) as root:
        src = root / "input"
        src.mkdir()
        try:
            (src / name).write_text("hand-made input\n")
            path = src / name
        except (OSError, ValueError):  # a name the file system refuses cannot be a file argument
            path = src / "plain.txt"
            path.write_text("hand-made input\n")
        code, err = run_main(monkeypatch, capsys, "artifacts", "put", "--", stage, str(path))
        if code == 0:
            manifest = next((root / "store").rglob("manifest.json"))
            assert manifest.parent.parent.name == stage and manifest.parent.parent.parent == root / "store"
        else:
            assert_refused(code, err, root)
            assert not (root / "store").exists() or not any(p.is_file() for p in (root / "store").rglob("*"))
        code, err = run_main(monkeypatch, capsys, "artifacts", "get", "-o", "got", "--", stage + "/nope", name)
        assert code == 1 and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize(("args", "filename", "data"), [
    (["eval", "validate", "--benchmark"], "bench.json", "[" * 100_000),
    (["train", "--config"], "train.yaml", "max_steps: [1,2\n".encode("utf-16-le")),
    (["experiment", "--config"], "experiment.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"),
    (["eval", "score", "--responses", "r.jsonl", "--output", "s.json", "--benchmark"], "bench.json",
     VALID_BENCHMARK.encode("utf-16-le")),
])
def test_a_real_process_ends_in_one_line(tmp_path, args, filename, data):
    (tmp_path / filename).write_bytes(data.encode() if isinstance(data, str) else data)
    (tmp_path / "r.jsonl").write_text(VALID_RESPONSES)
    env = {**os.environ, "ALS_STORE__ROOT": str(tmp_path / "store"), "ALS_WORK_DIR": str(tmp_path / "work")}
    proc = subprocess.run([sys.executable, "-m", "als_lm", *args, filename], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert not (tmp_path / "store").exists() and not (tmp_path / "s.json").exists()
