"""The probe written as an lm-evaluation-harness task."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from services.evaluator.probe.harness import TASK, write_task
from shared.errors import InvalidInput
from tests.evaluator.probe.tiny_trained import cloze_items


def test_the_task_is_multiple_choice_over_the_items_data_file(tmp_path):
    items = [{**item, "form": "memorisation"} for item in cloze_items(5)]
    config = yaml.safe_load(write_task(items, tmp_path / "task").read_text())
    data = tmp_path / "task" / f"{TASK}.jsonl"
    assert config["task"] == TASK and config["output_type"] == "multiple_choice"
    assert config["dataset_path"] == "json" and config["dataset_kwargs"]["data_files"]["test"] == str(data)
    assert config["test_split"] == "test" and config["target_delimiter"] == " "
    assert (config["doc_to_text"], config["doc_to_choice"], config["doc_to_target"]) == ("stem", "candidates",
                                                                                        "answer")
    rows = [json.loads(line) for line in data.read_text().splitlines()]
    assert rows == [{k: item[k] for k in ("id", "stem", "candidates", "answer")} for item in items]


@pytest.mark.parametrize("change, problem", [
    ({"answer": 10}, "item tiny.1: answer 10 is not an index of its candidates"),
    ({"candidates": "1995"}, "item tiny.1: candidates must be a list of at least two strings"),
    ({"stem": None}, None),
])
def test_a_bad_item_is_refused_naming_it_and_nothing_is_written(tmp_path, change, problem):
    items = cloze_items(3)
    items[1] = {**items[1], **change}
    if change.get("stem", "") is None:
        del items[1]["stem"]
        problem = "probe item 2 lacks stem"
    with pytest.raises(InvalidInput, match=problem):
        write_task(items, tmp_path / "task")
    assert not (tmp_path / "task").exists()


def harness(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.evaluator.probe.harness", *map(str, args)], check=False,
                          capture_output=True, text=True, timeout=60)


def test_the_command_writes_the_task_or_says_what_is_wrong(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(item) + "\n" for item in cloze_items(4)))
    done = harness(items, tmp_path / "out")
    assert done.returncode == 0 and f"--include_path {tmp_path / 'out'}" in done.stdout
    assert len((tmp_path / "out" / f"{TASK}.jsonl").read_text().splitlines()) == 4
    items.write_text("{not json\n")
    done = harness(items, tmp_path / "bad")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"Error: {items}:1 is not JSON: Expecting property name enclosed in double quotes"
    done = harness(tmp_path / "absent.jsonl", tmp_path / "bad")
    assert done.returncode == 1 and "absent.jsonl does not exist" in done.stderr and not (tmp_path / "bad").exists()


@pytest.mark.slow  # trains the tiny model (shared with the backend tests) and loads lm-eval
def test_lm_eval_ranks_the_task_as_the_in_process_probe_does(tmp_path_factory):
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from tests.evaluator.probe.tiny_trained import ranks, trained

    model = trained(tmp_path_factory.getbasetemp() / "tiny-trained")
    items = cloze_items(40)
    task = write_task(items, tmp_path_factory.mktemp("harness")).parent
    results = simple_evaluate(model="hf", model_args=f"pretrained={model.hf},dtype=float32", tasks=[TASK],
                              device="cpu", batch_size=1, log_samples=True,
                              task_manager=TaskManager(include_path=str(task)))
    theirs = {s["doc"]["id"]: s["acc"] for s in results["samples"][TASK]}
    ours = {item["id"]: float(ranks(model.loglikelihoods(item["stem"], [" " + c for c in item["candidates"]]),
                                    item["answer"]) == 1) for item in items}
    assert theirs == ours, "lm_eval puts the same candidate first on every item"
    assert results["results"][TASK]["acc,none"] == pytest.approx(sum(ours.values()) / len(items))
    assert 0.1 < sum(ours.values()) / len(items), "above chance: a model that learned, not a tie of zeros"
