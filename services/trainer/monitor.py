"""Training metrics (docs/training.md): a CSV row every log interval, GPU figures through NVML, plots.

The live CSV sits at ``<checkpoint dir>/metrics.csv``, next to the checkpoints of the run it
describes. Each row is one ``write`` of a whole line followed by ``flush`` and ``fsync``, so a
reader polling it sees complete rows plus at most one partial last line, which
``shared.schemas.model.read_metrics`` ignores. The store only receives it when the run is
published (a run's outputs do not exist before its manifest).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import torch

from services.trainer.gpus import GPUS
from shared.errors import InvalidInput
from shared.schemas.model import METRICS_COLUMNS, MetricsRow, read_metrics

log = logging.getLogger(__name__)

def peak_flops(device: str, override_tflops: float | None) -> float | None:
    if override_tflops is not None:
        return override_tflops * 1e12
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((gpu.bf16_tflops * 1e12 for gpu in GPUS.values() if gpu.model in name), None)


def gpu_figures() -> dict[str, float | None]:
    """Memory of this process on its GPU and the GPU's temperature (NVML); empty without CUDA."""
    if not torch.cuda.is_available():
        return {}
    figures = {
        "gpu_mem_allocated_gb": torch.cuda.memory_allocated() / 2**30,
        "gpu_mem_reserved_gb": torch.cuda.memory_reserved() / 2**30,
    }
    try:
        figures["gpu_temp_c"] = float(torch.cuda.temperature())  # NVML, honours CUDA_VISIBLE_DEVICES
    except Exception as err:  # noqa: BLE001 - NVML missing or refused: the column stays empty
        log.warning("GPU temperature unavailable through NVML: %s", err)
    return figures


class MetricsCSV:
    def __init__(self, path: Path, resume_step: int | None):
        """Open for appending; on resume, drop rows logged after the checkpoint being resumed."""
        self.path = Path(path)
        rows = read_metrics(self.path) if self.path.exists() and resume_step is not None else []
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(METRICS_COLUMNS)
            writer.writerows(r.csv_cells() for r in rows if r.step <= resume_step)
        os.replace(tmp, self.path)

    def append(self, row: MetricsRow) -> None:
        line = ",".join(row.csv_cells()) + "\n"
        with open(self.path, "a") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def plot(csv_path: Path, out_dir: Path) -> list[Path]:
    """PNG curves of a metrics CSV: losses, learning rate, throughput and, with a GPU, memory."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(csv_path)
    if not rows:
        raise InvalidInput(f"{csv_path} has no metrics rows to plot")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    def series(column: str) -> tuple[list[int], list[float]]:
        points = [(r.step, getattr(r, column)) for r in rows if getattr(r, column) is not None]
        return [p[0] for p in points], [p[1] for p in points]

    charts = {
        "loss": ("cross-entropy loss", ["train_loss", "val_loss"]),
        "lr": ("learning rate", ["lr"]),
        "throughput": ("tokens / s", ["tokens_per_s"]),
        "gpu_memory": ("GiB", ["gpu_mem_allocated_gb", "gpu_mem_reserved_gb"]),
    }
    written = []
    for name, (ylabel, columns) in charts.items():
        curves = {c: series(c) for c in columns if series(c)[0]}
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(7, 4))
        for column, (x, y) in curves.items():
            ax.plot(x, y, marker="o" if column == "val_loss" else None, markersize=3, label=column)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
