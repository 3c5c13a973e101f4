"""Uncertainty for every figure of the evaluation: bootstrap intervals, paired differences, exact McNemar.

One place states the conventions the report, ``report.json``, the UI and the experiment share:

- an interval is a 95 % **percentile bootstrap** over items (``scipy.stats.bootstrap``, 10 000
  resamples, ``numpy.random.default_rng(seed)``), so the same numbers and seed give the same interval;
- below ``MIN_INTERVAL_N`` items the interval is *undefined*, with the reason, not a number;
- when every item has the same value the bootstrap has nothing to resample and would print a
  zero-width interval; for a sample that is all 0 or all 1 (0/30 correct, every response hedged) the
  interval is the exact Clopper-Pearson one for that count instead, and any other constant sample is
  reported as a point with the reason;
- systems are compared **paired on the same items**: a bootstrap interval of the mean per-item
  difference, and an exact two-sided McNemar test (binomial on the discordant pairs) of an item-level
  yes/no outcome (strictly correct: services/evaluator/score.py ``is_correct``);
- the McNemar tests a report prints are one family, and each also gets its **Holm**-adjusted p-value
  over that family (``holm``), which controls the family-wise error rate without assuming the tests
  independent (they share items);
- a group (a category) with fewer than ``MIN_COMPARE_N`` items is marked too small to compare.

Why percentile and not BCa: scipy's BCa needs a jackknife acceleration that is 0/0 on a constant sample
(it returns NaN and warns), and on the demo's mostly-zero scores every category is near-constant.
The percentile interval is defined on every sample the report meets and is the one the docs state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as sps

LEVEL = 0.95
RESAMPLES = 10_000
SEED = 0
"""Default bootstrap seed; stages pass the settings' ``seed`` so a run records which one it used."""
MIN_INTERVAL_N = 5
"""Below 5 items a bootstrap has at most 35 distinct resamples, too coarse for 2.5 %/97.5 % percentiles."""
MIN_COMPARE_N = 10
"""Groups with fewer items are reported but marked too small to compare."""
METHOD = "percentile bootstrap"


class Interval(BaseModel):
    """An estimate with its confidence interval and n; ``low``/``high`` are None when undefined."""

    model_config = ConfigDict(extra="forbid")

    estimate: float | None
    low: float | None = None
    high: float | None = None
    n: int = Field(ge=0)
    level: float = LEVEL
    method: str = METHOD
    undefined_reason: str | None = None

    @property
    def defined(self) -> bool:
        return self.undefined_reason is None

    def text(self, *, percent: bool = True, signed: bool = False) -> str:
        """``27.7 % [19.1, 36.9] (n=30)``; ``+27.7 pp [...]`` when signed; ``33.3 % (n=3, no interval: ...)``.

        ``percent`` scales shares by 100; ``signed`` marks a difference (percentage points).
        """
        if self.estimate is None:
            return f"undefined (n={self.n}: {self.undefined_reason})"
        scale, unit = (100.0, " pp" if signed else " %") if percent else (1.0, "")
        sign = "+" if signed else ""
        value = f"{scale * self.estimate:{sign}.1f}{unit}"
        if not self.defined:
            return f"{value} (n={self.n}, no interval: {self.undefined_reason})"
        return f"{value} [{scale * self.low:.1f}, {scale * self.high:.1f}] (n={self.n})"

    def __str__(self) -> str:
        return self.text()


class McNemar(BaseModel):
    """Exact McNemar test: ``a_only`` items only system a got right, ``b_only`` only b."""

    model_config = ConfigDict(extra="forbid")

    a_only: int = Field(ge=0)
    b_only: int = Field(ge=0)
    n: int = Field(ge=0)
    p_value: float = Field(ge=0.0, le=1.0)
    p_holm: float | None = Field(None, ge=0.0, le=1.0,
                                 description="Holm-adjusted over the report's family of tests; None: not in one")

    def text(self) -> str:
        holm = "" if self.p_holm is None else f", Holm-adjusted p = {self.p_holm:.3g}"
        return f"{self.a_only} vs {self.b_only} discordant of {self.n}, exact McNemar p = {self.p_value:.3g}{holm}"


class Comparison(BaseModel):
    """System a minus system b on the items both answered."""

    model_config = ConfigDict(extra="forbid")

    a: str
    b: str
    difference: Interval
    mcnemar: McNemar
    too_small: bool = Field(description=f"fewer than {MIN_COMPARE_N} paired items")


def _values(values: Sequence[float] | Mapping[str, float]) -> np.ndarray:
    return np.asarray(list(values.values()) if isinstance(values, Mapping) else list(values), dtype=float)


def bootstrap_mean(values: Sequence[float] | Mapping[str, float], *, seed: int = SEED,
                   resamples: int = RESAMPLES, level: float = LEVEL) -> Interval:
    """Mean over items with its percentile bootstrap interval (see the module docstring for the rules)."""
    data = _values(values)
    n = len(data)
    if n == 0:
        return Interval(estimate=None, n=0, level=level, undefined_reason="no items")
    estimate = float(data.mean())
    if n < MIN_INTERVAL_N:
        return Interval(estimate=estimate, n=n, level=level,
                        undefined_reason=f"fewer than {MIN_INTERVAL_N} items")
    if np.all(data == data[0]):
        if data[0] in (0.0, 1.0):
            ci = sps.binomtest(int(data.sum()), n).proportion_ci(confidence_level=level, method="exact")
            return Interval(estimate=estimate, low=float(ci.low), high=float(ci.high), n=n, level=level,
                            method=f"exact Clopper-Pearson (every item {data[0]:g})")
        return Interval(estimate=estimate, low=estimate, high=estimate, n=n, level=level,
                        method=f"{METHOD} (every item equal: no variability to resample)")
    result = sps.bootstrap((data,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                           vectorized=True, random_state=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(estimate=estimate, low=float(ci.low), high=float(ci.high), n=n, level=level)


def bootstrap_ratio(numerators: Sequence[float], denominators: Sequence[float], *, seed: int = SEED,
                    resamples: int = RESAMPLES, level: float = LEVEL) -> Interval:
    """sum(numerators) / sum(denominators) with items resampled whole (facts stated / facts asked).

    A pooled share over facts, but its uncertainty comes from the items: facts of one answer are not
    independent, so resampling facts would understate it. ``n`` is the number of items.
    """
    num, den = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if len(num) != len(den):
        raise ValueError(f"numerators and denominators differ in length: {len(num)} vs {len(den)}")
    n = len(num)
    if n == 0 or den.sum() == 0:
        return Interval(estimate=None, n=n, level=level, undefined_reason="nothing to count")
    estimate = float(num.sum() / den.sum())
    if n < MIN_INTERVAL_N:
        return Interval(estimate=estimate, n=n, level=level,
                        undefined_reason=f"fewer than {MIN_INTERVAL_N} items")
    share = num / np.where(den == 0, 1, den)
    if np.all(share == share[0]) and share[0] in (0.0, 1.0):
        ci = sps.binomtest(int(num.sum()), int(den.sum())).proportion_ci(confidence_level=level, method="exact")
        return Interval(estimate=estimate, low=float(ci.low), high=float(ci.high), n=n, level=level,
                        method=f"exact Clopper-Pearson over facts (every item {share[0]:g})")

    def ratio(x, y, axis=-1):
        return x.sum(axis=axis) / np.maximum(y.sum(axis=axis), 1e-12)

    result = sps.bootstrap((num, den), ratio, paired=True, n_resamples=resamples, confidence_level=level,
                           method="percentile", vectorized=True, random_state=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(estimate=estimate, low=float(ci.low), high=float(ci.high), n=n, level=level)


def _paired(a: Sequence | Mapping[str, object], b: Sequence | Mapping[str, object]) -> tuple[list, list]:
    """The two samples aligned item by item; refuses inputs that do not describe the same items."""
    if isinstance(a, Mapping) != isinstance(b, Mapping):
        raise ValueError("paired inputs must both be mappings (item id -> value) or both sequences")
    if isinstance(a, Mapping):
        if a.keys() != b.keys():
            only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
            raise ValueError(f"paired inputs cover different items: only in a {only_a[:5]}, only in b {only_b[:5]}")
        ids = sorted(a)
        return [a[i] for i in ids], [b[i] for i in ids]
    if len(a) != len(b):
        raise ValueError(f"paired inputs differ in length: {len(a)} vs {len(b)}")
    return list(a), list(b)


def paired_difference(a: Sequence[float] | Mapping[str, float], b: Sequence[float] | Mapping[str, float], *,
                      seed: int = SEED, resamples: int = RESAMPLES, level: float = LEVEL) -> Interval:
    """mean(a - b) over the same items, resampling items (pairs) together."""
    xs, ys = _paired(a, b)
    return bootstrap_mean([x - y for x, y in zip(xs, ys)], seed=seed, resamples=resamples, level=level)


def mcnemar_exact(a_ok: Sequence[bool] | Mapping[str, bool], b_ok: Sequence[bool] | Mapping[str, bool]) -> McNemar:
    """Exact two-sided McNemar: under no difference each discordant pair is a fair coin."""
    xs, ys = _paired(a_ok, b_ok)
    a_only = sum(bool(x) and not y for x, y in zip(xs, ys))
    b_only = sum(bool(y) and not x for x, y in zip(xs, ys))
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else float(sps.binomtest(a_only, discordant, 0.5).pvalue)
    return McNemar(a_only=a_only, b_only=b_only, n=len(xs), p_value=min(1.0, p))


def compare(a_name: str, a: Mapping[str, float], a_ok: Mapping[str, bool], b_name: str,
            b: Mapping[str, float], b_ok: Mapping[str, bool], *, seed: int = SEED) -> Comparison:
    """System a against b on the items both scored, paired: the difference of a graded value (id -> value)
    with its interval, and McNemar on a yes/no outcome (id -> bool) of the same items."""
    common = sorted(a.keys() & b.keys())
    return Comparison(
        a=a_name, b=b_name,
        difference=paired_difference({i: a[i] for i in common}, {i: b[i] for i in common}, seed=seed),
        mcnemar=mcnemar_exact({i: a_ok[i] for i in common}, {i: b_ok[i] for i in common}),
        too_small=len(common) < MIN_COMPARE_N,
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (Holm 1979), in the input's order: the i-th smallest of m p-values is
    multiplied by m - i + 1 (i from 1), made non-decreasing along that order and capped at 1. Rejecting
    where the adjusted p is below alpha keeps the chance of any false rejection in the family below alpha."""
    m = len(p_values)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
