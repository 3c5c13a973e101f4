"""A seeded sample of the probe items, stratified by form and exposure bucket: where a system costs too much
to score every item (RAG reads thousands of context tokens per item on a CPU), each stratum keeps its share of
the items, so rates by form and bucket stay estimable and the sample's overall rate estimates the full set's."""

from __future__ import annotations

import random
from collections import defaultdict

from shared.schemas.probe import ProbeItem


def stratified(items: list[ProbeItem], n: int | None, seed: int) -> list[ProbeItem]:
    """``n`` of the items (all of them when ``n`` is None or not smaller), in their original order: each
    (form, bucket) stratum gets its proportional share, the remainders going to the largest fractions."""
    if n is None or n >= len(items):
        return list(items)
    strata: dict[tuple[str, str], list[ProbeItem]] = defaultdict(list)
    for item in items:
        strata[(item.form, item.bucket)].append(item)
    keys = sorted(strata)
    shares = {k: n * len(strata[k]) / len(items) for k in keys}
    counts = {k: int(shares[k]) for k in keys}
    for k in sorted(keys, key=lambda k: (counts[k] - shares[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    rng = random.Random(seed)
    chosen = {i.id for k in keys for i in rng.sample(sorted(strata[k], key=lambda i: i.id), counts[k])}
    return [i for i in items if i.id in chosen]
