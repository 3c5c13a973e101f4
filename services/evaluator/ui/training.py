"""The Training page's sources: the trainer's live ``metrics.csv``, or any published ``train`` run's.

A stored run's CSV is fetched and verified like any stage input, once per run (it never changes);
the live CSV is reread on every tick of the page's timer.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from services.evaluator.ui.handlers import training_curves, warning
from shared import runs
from shared.runs import IntegrityError, RunNotFound
from shared.store import ArtifactStore, StoreError

LIVE = "live"
LIVE_LABEL = "Live: the trainer's metrics.csv (path below)"


def choices(store: ArtifactStore) -> list[tuple[str, str]]:
    """(label, value) for the run picker: the live CSV first, then every stored train run, newest first."""
    found = []
    for manifest in reversed(runs.runs(store, "train")):
        if not any(o.name == "metrics.csv" for o in manifest.outputs):
            continue
        m = manifest.metrics
        detail = " · ".join(part for part in (
            str(m.get("preset") or ""),
            f"{m['steps']} steps" if "steps" in m else "",
            f"best val loss {m['best_val_loss']:.3f}" if isinstance(m.get("best_val_loss"), float) else "",
        ) if part)
        found.append((f"{manifest.run}" + (f" ({detail})" if detail else ""), manifest.run))
    return [(LIVE_LABEL, LIVE), *found]


def stored_curves(store: ArtifactStore, run: str, cache: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, str]:
    """The curves of a published train run, from its ``metrics.csv``; a status line instead of a raise."""
    empty = pd.DataFrame({"step": [], "value": [], "series": []})
    try:
        manifest = runs.resolve(store, run)
        dest = cache / manifest.stage / manifest.run_id / "metrics.csv"
        path = dest if dest.is_file() else runs.fetch(store, manifest.output("metrics.csv"), dest)
    except (RunNotFound, KeyError, IntegrityError, StoreError) as err:
        return empty, empty, empty, warning(f"Cannot read the stored run {run}: {err}")
    return training_curves(path, label=run)
