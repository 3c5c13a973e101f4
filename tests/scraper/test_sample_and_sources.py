"""The bundled sample is published as scrape-sample; bad lines stop it with file and line; the curated
source list is valid and docs/sources.md is generated from it."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from services.scraper import sources
from services.scraper.cli import scrape
from services.scraper.sources import SourceList, load_sources, render_inventory
from shared import runs
from shared.schemas.corpus import CATEGORIES
from shared.store import LocalStore


@pytest.fixture
def env(tmp_path, monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("ALS_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALS_STORE__ROOT", str(tmp_path / "artifacts"))
    monkeypatch.setenv("ALS_WORK_DIR", str(tmp_path / "work"))
    return tmp_path


def test_sample_is_published_once_and_then_skipped(env, repo_root):
    first = CliRunner().invoke(scrape, ["sample"])
    assert first.exit_code == 0, first.output
    assert "scrape-sample: published" in first.output
    store = LocalStore(env / "artifacts")
    manifest = runs.latest(store, "scrape-sample")
    docs = [json.loads(line) for ref in manifest.outputs_under("docs/")
            for line in store.get_bytes(ref.key).decode().splitlines()]
    assert len(docs) == manifest.metrics["documents"] >= 200
    assert manifest.metrics["rejected"] == 0 and manifest.output("rejected.jsonl").size == 0
    assert {d["metadata"].get("category") for d in docs} <= set(CATEGORIES)
    assert {i.run for i in manifest.inputs} == {"bundled"}
    second = CliRunner().invoke(scrape, ["sample"])
    assert "skipped (unchanged)" in second.output and len(runs.runs(store, "scrape-sample")) == 1


@pytest.mark.parametrize(("line", "message"), [
    (b'{"id": "x", "source": "s"}\n', "valid.jsonl:2: not a valid RawDocument: url: Field required"),
    (b"not json\n", "valid.jsonl:2: not a valid RawDocument"),
    (b'{"id": "\xff"}\n', "valid.jsonl:2: not valid UTF-8"),
])
def test_a_bad_sample_line_is_an_error_naming_file_and_line(env, line, message):
    sample = env / "sample"
    sample.mkdir()
    good = {"id": "a", "source": "s", "url": "u", "title": "t", "text": "ALS text", "date_accessed": "2026-01-01",
            "license": "MIT"}
    (sample / "valid.jsonl").write_bytes(json.dumps(good).encode() + b"\n" + line)
    result = CliRunner().invoke(scrape, ["sample"], env={"ALS_SCRAPE__SAMPLE_DIR": str(sample)})
    assert isinstance(result.exception, ValueError) and message in str(result.exception)
    assert not (env / "artifacts").exists() or runs.runs(LocalStore(env / "artifacts"), "scrape-sample") == []


def test_duplicate_ids_in_the_sample_are_refused(env, repo_root):
    sample = env / "sample"
    shutil.copytree(repo_root / "services" / "scraper" / "sample", sample)
    first = (sample / "research.jsonl").read_text().splitlines()[0]
    (sample / "zz_copy.jsonl").write_text(first + "\n")
    result = CliRunner().invoke(scrape, ["sample"], env={"ALS_SCRAPE__SAMPLE_DIR": str(sample)})
    assert "zz_copy.jsonl:1: duplicate id" in str(result.exception)


def test_curated_sources_are_valid_and_the_inventory_is_up_to_date(repo_root):
    listed = load_sources(repo_root / "services" / "scraper" / "sources.yaml")
    assert listed.web and listed.wikipedia
    assert all(s.justification for s in listed.web if s.category == "narrative")
    assert (repo_root / "docs" / "sources.md").read_text() == render_inventory(listed), \
        "docs/sources.md is stale: run python -m services.scraper.sources"
    assert sources.main(["--check"]) == 0


@pytest.mark.parametrize(("entry", "problem"), [
    ({"url": "https://example.org/blog", "category": "narrative", "publisher": "p", "license": "l"},
     "needs an ethics justification"),
    ({"url": "https://www.facebook.com/groups/als", "category": "narrative", "publisher": "p", "license": "l",
      "justification": "j"}, "forum or gated community"),
    ({"url": "https://example.org/community/threads/1", "category": "educational", "publisher": "p", "license": "l"},
     "forum or gated community"),
    ({"url": "https://example.org/x", "category": "research", "publisher": "p", "license": "l"}, "category"),
])
def test_source_list_refuses_unjustified_narratives_gated_communities_and_unknown_categories(tmp_path, entry, problem):
    path = tmp_path / "sources.yaml"
    path.write_text(json.dumps({"web": [entry]}))
    with pytest.raises(ValueError, match=problem):
        load_sources(path)
    assert SourceList().web == []
