"""The 90/10 train/validation split (docs/processing.md step 5): by document, never by sentence, so no
text leaks across; per source category, so validation looks like training."""

from __future__ import annotations

import random
from collections import defaultdict


def validation_ids(docs: list[tuple[str, str]], fraction: float, seed: int) -> set[str]:
    """Ids of the validation documents among ``(id, category)`` pairs.

    Each category contributes ``fraction`` of its documents, rounded half up, so a category of
    five or more is represented on both sides. The ids are sorted before the seeded shuffle:
    the split depends on which documents there are, not on the order they were read in.
    """
    by_category: dict[str, list[str]] = defaultdict(list)
    for doc_id, category in docs:
        by_category[category].append(doc_id)
    rng = random.Random(seed)
    val: set[str] = set()
    for category in sorted(by_category):
        ids = sorted(by_category[category])
        rng.shuffle(ids)
        val.update(ids[: int(len(ids) * fraction + 0.5)])
    return val
