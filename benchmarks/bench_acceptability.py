"""Non-answers (issue 24): how the SLOR threshold separates garbled from fluent real answers, on development
data only (the labelled sets of services/evaluator/benchmark/real_outputs/, never the validation sets), and
what one response costs the first time.

    .venv/bin/python benchmarks/bench_acceptability.py

A distinct non-empty answer of 5 words or more counts as garbled where a reader said so (answer kind
non_answer, or a note saying garbled, degenerate or nonsense) or where the from-scratch model wrote it; the
rest are fluent. Prints, per threshold, the share of garbled answers found and of fluent ones called garbled.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.evaluator.scoring.acceptability import MIN_WORDS, Acceptability, words_judged
from services.evaluator.settings import BENCHMARK, EvalConfig

SETS = ["experiment-20261207b-answers", "experiment-20261207", ".", "experiment-20261207b-claims"]
THRESHOLDS = (3.5, 3.8, 4.0, 4.3, 4.5, 5.0)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def answers() -> list[tuple[str, str, bool]]:
    """(question, response, garbled) for every distinct non-empty labelled answer of 5 words or more."""
    out, seen = [], set()
    for name in SETS:
        folder = BENCHMARK.parent / "real_outputs" / name
        labels = {lab["pair_id"]: lab for lab in _jsonl(folder / "labels-1.jsonl")}
        for pair in _jsonl(folder / "pairs.jsonl"):
            text = pair["response"]
            if text in seen or words_judged(text) < MIN_WORDS:
                continue
            seen.add(text)
            label = labels.get(pair["pair_id"], {})
            note = (label.get("note") or "").lower()
            garbled = (label.get("verdict") == "non_answer" or pair["system"].startswith("scratch")
                       or any(w in note for w in ("garbl", "degenerate", "nonsense")))
            out.append((pair["question"], text, garbled))
    return out


def main() -> None:
    rows = answers()
    scorer = Acceptability(EvalConfig().acceptability_threshold)
    start = time.perf_counter()
    values = [(scorer.slor(q, text), garbled) for q, text, garbled in rows]
    elapsed = time.perf_counter() - start
    garbled = [v for v, g in values if g]
    fluent = [v for v, g in values if not g]
    print(f"{len(rows)} answers: {len(garbled)} garbled, {len(fluent)} fluent; SLOR in {elapsed:.1f} s "
          f"({elapsed / len(rows):.3f} s each; cached values are read from {scorer.cache_path})")
    print("| threshold | garbled found | fluent called garbled |\n|---|---|---|")
    for t in THRESHOLDS:
        found = sum(v < t for v in garbled)
        wrong = sum(v < t for v in fluent)
        mark = " (the setting)" if t == scorer.threshold else ""
        print(f"| {t}{mark} | {found}/{len(garbled)} ({found / len(garbled):.1%}) | "
              f"{wrong}/{len(fluent)} ({wrong / len(fluent):.1%}) |")


if __name__ == "__main__":
    main()
