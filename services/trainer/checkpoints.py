"""Atomic DeepSpeed checkpoints: written under a temporary name, renamed when complete.

A checkpoint is a directory ``step<N>`` holding DeepSpeed's files (model, optimizer, scheduler),
one ``trainer_state_rank<R>.pt`` per rank (RNG states, data position) and, written last by rank
0, ``checkpoint.json``. It is saved as ``.tmp-step<N>`` and renamed only after the marker is on
disk, so a process killed mid-save (even by SIGKILL) leaves a ``.tmp-`` directory that is never
picked up and is removed at the next start. Pruned checkpoints are renamed away before deletion
for the same reason.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import InvalidInput

log = logging.getLogger(__name__)

MARKER = "checkpoint.json"


class CheckpointInfo(BaseModel):
    """What ``checkpoint.json`` records; enough to refuse resuming into a different model."""

    model_config = ConfigDict(extra="forbid")

    step: int
    tokens_seen: int
    val_loss: float | None
    best_val_loss: float | None
    evals_without_improvement: int
    world_size: int
    zero_stage: int
    model: dict


def tag(step: int) -> str:
    return f"step{step:08d}"


def snapshot_path(root: Path, step: int) -> Path:
    """Where the weights-only probe snapshot of ``step`` is written: beside the checkpoints, never one of them
    (``complete`` globs ``step*``)."""
    return Path(root) / "snapshots" / tag(step) / "model.pt"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def complete(root: Path) -> list[tuple[Path, CheckpointInfo]]:
    """Complete checkpoints under ``root``, oldest first; anything without a valid marker is ignored."""
    found = []
    for path in sorted(Path(root).glob("step*")):
        try:
            found.append((path, CheckpointInfo.model_validate_json((path / MARKER).read_text())))
        except (OSError, ValidationError):
            log.warning("ignoring incomplete checkpoint %s", path)
    return sorted(found, key=lambda item: item[1].step)


def last(root: Path) -> tuple[Path, CheckpointInfo] | None:
    found = complete(root)
    return found[-1] if found else None


def best(root: Path) -> tuple[Path, CheckpointInfo] | None:
    scored = [c for c in complete(root) if c[1].val_loss is not None]
    return min(scored, key=lambda c: c[1].val_loss) if scored else None


def remove_partial(root: Path) -> None:
    """Leftovers of saves or prunes that were killed half-way (rank 0, before training)."""
    for path in Path(root).glob(".*-step*"):
        log.warning("removing partial checkpoint %s", path)
        shutil.rmtree(path, ignore_errors=True)


def save(engine, root: Path, info: CheckpointInfo, trainer_state: dict, keep: int,
         keep_steps: frozenset[int] = frozenset()) -> Path:
    """Collective: every rank calls it. Returns the final directory."""
    root = Path(root)
    rank = dist.get_rank()
    name, tmp = tag(info.step), f".tmp-{tag(info.step)}"
    engine.save_checkpoint(str(root), tag=tmp, save_latest=False)
    (root / tmp).mkdir(parents=True, exist_ok=True)  # DeepSpeed creates it on the saving ranks only
    torch.save(trainer_state, root / tmp / f"trainer_state_rank{rank}.pt")
    dist.barrier()
    final = root / name
    if rank == 0:
        (root / tmp / MARKER).write_text(info.model_dump_json(indent=2))
        for f in (p for p in (root / tmp).iterdir() if p.is_file()):
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # the same step saved again after a resume: replace it whole
            os.rename(final, root / f".del-{name}")
        os.rename(root / tmp, final)
        _fsync_dir(root)
        prune(root, keep, keep_steps)
    dist.barrier()
    return final


def prune(root: Path, keep: int, keep_steps: frozenset[int] = frozenset()) -> None:
    """Keep the ``keep`` most recent checkpoints, the one with the lowest validation loss, and those
    at ``keep_steps`` (the learning curve's points, which must outlive the run)."""
    found = complete(root)
    keep_paths = {p for p, _ in found[-keep:]} | {p for p, info in found if info.step in keep_steps}
    if b := best(root):
        keep_paths.add(b[0])
    for path, _ in found:
        if path not in keep_paths:
            doomed = path.with_name(f".del-{path.name}")
            os.rename(path, doomed)
            shutil.rmtree(doomed)
    for leftover in root.glob(".del-step*"):
        shutil.rmtree(leftover)


def load(engine, path: Path) -> dict:
    """Restore engine state from ``path`` and return this rank's trainer state."""
    loaded, _ = engine.load_checkpoint(str(path.parent), tag=path.name)
    if loaded is None:
        raise InvalidInput(f"DeepSpeed could not load checkpoint {path}")
    return torch.load(path / f"trainer_state_rank{dist.get_rank()}.pt", weights_only=False)


def consolidated_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """One fp32 state dict from a checkpoint, whatever its ZeRO stage or precision."""
    if any(path.glob("*zero_pp_rank_*_optim_states.pt")):
        # ZeRO 1-3 and bf16 keep the fp32 master weights partitioned in the optimizer files
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        state = get_fp32_state_dict_from_zero_checkpoint(str(path.parent), tag=path.name)
    else:  # stage 0 in fp32: the module's own weights are the master weights
        state = torch.load(path / "mp_rank_00_model_states.pt", map_location="cpu", weights_only=False)["module"]
    state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    state.setdefault("lm_head.weight", state["transformer.wte.weight"])
    state.setdefault("transformer.wte.weight", state["lm_head.weight"])
    return state
