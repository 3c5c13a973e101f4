"""``als-lm doctor``: what this machine has for each stage, and how to fix what it lacks."""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
from pathlib import Path

import click
from rich.table import Table

from shared.log import out
from shared.servers import ServerError, binary
from shared.settings import CommonSettings
from shared.store import StoreError, open_store

SETUP = "run `make setup`"


def _package(name: str) -> tuple[bool, str]:
    try:
        return True, importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False, f"not installed; {SETUP}"


def checks(settings: CommonSettings) -> list[tuple[str, bool, str, bool]]:
    """(what, ok, detail, required) rows; optional rows (a GPU) never fail the doctor."""
    rows = [("python", sys.version_info[:2] == (3, 11), sys.version.split()[0] + " (3.11 expected)", True)]
    ok, detail = _package("torch")
    rows.append(("torch", ok, detail, True))
    if ok:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            rows.append(("cuda", True, f"{props.name}, {props.total_memory / 2**30:.1f} GiB, CUDA {torch.version.cuda}", False))
        else:
            rows.append(("cuda", False, "no CUDA device: training runs on CPU (fine for the demo; see docs/gpu.md)", False))
    for pkg in ("deepspeed", "tokenizers", "scrapy", "llama-cpp-python", "chromadb", "gradio"):
        rows.append((pkg, *_package(pkg), True))
    for name in ("minio", "ollama"):
        try:
            rows.append((f"{name} binary", True, str(binary(name)), True))
        except ServerError as err:
            rows.append((f"{name} binary", False, str(err), True))
    work = Path(settings.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free / 2**30
    rows.append(("free disk", free > 5, f"{free:.1f} GiB at {work.resolve()} (5 GiB needed for the demo)", True))
    try:
        store = open_store(settings.store)
        rows.append(("store", True, store.description, True))
    except StoreError as err:
        rows.append(("store", False, str(err), True))
    return rows


@click.command()
def doctor() -> None:
    """Check each requirement and print OK or MISSING with the fix; exit 1 if a required one is missing."""
    table = Table("check", "status", "detail")
    failed = False
    for what, ok, detail, required in checks(CommonSettings()):
        status = "[green]OK" if ok else ("[red]MISSING" if required else "[yellow]ABSENT")
        table.add_row(what, status, detail)
        failed |= required and not ok
    out.print(table)
    if failed:
        raise SystemExit(1)
