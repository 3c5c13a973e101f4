"""The probe as an lm-evaluation-harness task, so any Hugging Face model is scored on the same items:

    lm_eval --model hf --model_args pretrained=<HF directory> --tasks als_probe --include_path <OUT_DIR>

``write_task`` writes ``OUT_DIR/als_probe.yaml`` and ``OUT_DIR/als_probe.jsonl`` (one item a line). The task is
lm-eval's ``multiple_choice``: each candidate is scored as ``target_delimiter`` + candidate after the stem, and
``acc`` is the share of items whose true candidate has the highest log-likelihood, the probe's accuracy@1
(``acc_norm`` divides by the continuation's length in bytes). lm-eval passes ``data_files`` to
``datasets.load_dataset`` as it is, relative to the working directory, so the YAML names the data file by its
absolute path: write the task where it will be run from.

Command line: ``python -m services.evaluator.probe.harness ITEMS_JSONL OUT_DIR``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import click
import yaml

from shared.errors import InvalidInput
from shared.schemas.probe import TARGET_DELIMITER

TASK = "als_probe"
FIELDS = ("id", "stem", "candidates", "answer")


def task_config(data_file: Path, name: str = TASK) -> dict:
    return {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "stem",
        "doc_to_choice": "candidates",
        "doc_to_target": "answer",
        "target_delimiter": TARGET_DELIMITER,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0},
    }


def task_row(item: Mapping, line: int | str) -> dict:
    """The four fields lm-eval reads, checked: a bad item stops the export naming it."""
    missing = [f for f in FIELDS if f not in item]
    if missing:
        raise InvalidInput(f"probe item {line} lacks {', '.join(missing)}")
    candidates, answer = item["candidates"], item["answer"]
    if not (isinstance(candidates, list) and len(candidates) >= 2 and all(isinstance(c, str) for c in candidates)):
        raise InvalidInput(f"probe item {item['id']}: candidates must be a list of at least two strings")
    if not (isinstance(answer, int) and 0 <= answer < len(candidates)):
        raise InvalidInput(f"probe item {item['id']}: answer {answer!r} is not an index of its candidates")
    return {f: item[f] for f in FIELDS}


def write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_task(items: Iterable[Mapping], out_dir: Path, name: str = TASK) -> Path:
    """Write the task's data file, then its YAML (what lm-eval looks for) into ``out_dir``; returns the YAML."""
    out_dir = Path(out_dir)
    rows = [task_row(item, i) for i, item in enumerate(items, 1)]
    if not rows:
        raise InvalidInput("no probe items to write as an lm-eval task")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"{name}.jsonl"
    write_atomically(data, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    config = out_dir / f"{name}.yaml"
    write_atomically(config, yaml.safe_dump(task_config(data, name), sort_keys=False))
    return config


def read_items(path: Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"probe items file {path} does not exist")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise InvalidInput(f"{path}:{n} is not JSON: {err.msg}") from None
    return items


@click.command(help="Write the probe items of ITEMS_JSONL as the lm-evaluation-harness task als_probe in OUT_DIR.")
@click.argument("items_jsonl", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
def main(items_jsonl: Path, out_dir: Path) -> None:
    try:
        config = write_task(read_items(items_jsonl), out_dir)
    except InvalidInput as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {config}; run: lm_eval --model hf --model_args pretrained=<HF directory> --tasks {TASK} "
               f"--include_path {config.parent}")


if __name__ == "__main__":
    main()
