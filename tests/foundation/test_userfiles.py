"""The one reader of user files: encodings, limits, depth, line numbers, and summarised validation errors."""

from __future__ import annotations

import codecs
import json

import pytest

from shared import userfiles
from shared.userfiles import UnreadableFile

DOC = {"name": "riluzole", "notes": ["café", 1995]}


@pytest.mark.parametrize("data", [
    json.dumps(DOC, ensure_ascii=False).encode("utf-8"),
    codecs.BOM_UTF8 + json.dumps(DOC, ensure_ascii=False).encode("utf-8"),
    json.dumps(DOC, ensure_ascii=False).encode("utf-16"),  # with its BOM
    codecs.BOM_UTF16_BE + json.dumps(DOC, ensure_ascii=False).encode("utf-16-be"),
])
def test_utf8_with_or_without_bom_and_utf16_with_bom_are_read(tmp_path, data):
    path = tmp_path / "doc.json"
    path.write_bytes(data)
    assert userfiles.read_json(path, "benchmark") == DOC


@pytest.mark.parametrize(("data", "message"), [
    (json.dumps(DOC, ensure_ascii=False).encode("utf-16-le"), "looks like UTF-16 without a byte-order mark"),
    ('{"name": "café"}'.encode("latin-1"), "is not UTF-8 (byte 0xe9 on line 1; Latin-1"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "is not UTF-8 (byte 0x89 on line 1"),
    (b'{"a":\n 1}\x00', "contains NUL bytes (line 2)"),
    (b'[{"id": 1},\n {"id": 2', "is not valid JSON: Expecting ',' delimiter at line 2 column 10"),
    (b"\n" + b"[" * 5000, f"line 2: lists and objects are nested more than {userfiles.MAX_DEPTH} deep"),
])
def test_bad_json_is_one_line_naming_file_line_and_fix(tmp_path, data, message):
    path = tmp_path / "bench.json"
    path.write_bytes(data)
    with pytest.raises(UnreadableFile) as err:
        userfiles.read_json(path, "benchmark")
    assert message in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)


def test_brackets_inside_strings_are_not_nesting(tmp_path):
    path = tmp_path / "deep-string.json"
    path.write_text(json.dumps(["[" * 500 + '\\"{' * 100]))
    assert userfiles.read_json(path, "benchmark") == ["[" * 500 + '\\"{' * 100]


def test_a_file_over_its_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.json"
    with open(path, "wb") as fh:
        fh.truncate(userfiles.DATA_LIMIT + 1)  # sparse: no disk used
    monkeypatch.setattr(type(path), "read_bytes", lambda self: pytest.fail("read a file over the limit"))
    with pytest.raises(UnreadableFile, match=f"over the {userfiles.DATA_LIMIT:,}-byte limit"):
        userfiles.read_json(path, "benchmark")


@pytest.mark.parametrize(("text", "message"), [
    ("max_steps: [1,2\n", "is not valid YAML: expected ',' or ']', but got '<stream end>' at line 2 column 1"),
    ("a: 1\n\tb: 2\n", "is not valid YAML: found character '\\t' that cannot start any token at line 2"),
    ("a: " + "[" * 3000, f"nested more than {userfiles.MAX_DEPTH} deep"),
    ("a:\n" + "".join(" " * i + "- \n" for i in range(1, 200)), f"nested more than {userfiles.MAX_DEPTH} deep"),
])
def test_bad_yaml_names_the_line_and_deep_yaml_never_recurses(tmp_path, text, message):
    path = tmp_path / "train.yaml"
    path.write_text(text)
    with pytest.raises(UnreadableFile) as err:
        userfiles.read_yaml(path, "train config")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_jsonl_errors_name_their_line(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"id": "a"}\n\n{"id": \n')
    with pytest.raises(UnreadableFile, match=r"responses .*r\.jsonl line 3 is not valid JSON"):
        list(userfiles.read_jsonl(path, "responses"))


def test_streamed_lines_name_the_bad_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(codecs.BOM_UTF8 + b"ALS\n\nmotor neurone\ncaf\xe9\n")
    lines = userfiles.stream_lines(path, "corpus")
    assert [next(lines) for _ in range(3)] == ["ALS\n", "\n", "motor neurone\n"]
    with pytest.raises(UnreadableFile, match="corpus .* line 4 is not UTF-8 \\(byte 0xe9\\)"):
        next(lines)


def test_many_problems_are_summarised_in_one_line_and_written_in_full(tmp_path):
    problems = [(f"item q-{i}", "source: Field required") for i in range(40)] + [("item q-3", "category: is blank")]
    report = tmp_path / "problems.txt"
    line = userfiles.summarize("benchmark b.json is invalid", problems, report)
    assert line.startswith("benchmark b.json is invalid: 40 invalid item(s), 41 problem(s); "
                           "most common (40x): source: Field required; first: item q-0: source: Field required")
    assert line.endswith(f"; all 41 in {report}") and len(line) < 500 and "q-39" not in line
    assert report.read_text().splitlines()[-1] == "item q-3\tcategory: is blank"


def test_few_problems_need_no_report_file(tmp_path):
    line = userfiles.summarize("responses r.jsonl are invalid", [("line 2", "id: Field required")], tmp_path / "x")
    assert line == ("responses r.jsonl are invalid: 1 invalid item(s), 1 problem(s); most common (1x): "
                    "id: Field required; first: line 2: id: Field required")
    assert not (tmp_path / "x").exists()
