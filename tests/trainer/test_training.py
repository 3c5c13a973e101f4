"""DeepSpeed training on CPU: exact resume, atomic checkpoints, ZeRO-2 offload, two data-parallel ranks."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import torch
import torch.multiprocessing as mp

from services.trainer import checkpoints
from services.trainer.model import GPT, GPTConfig
from services.trainer.settings import CONFIG_DIR, TrainConfig
from services.trainer.train import Trainer, deepspeed_config, export_model, lr_at
from shared.schemas.corpus import TokenShardsMeta
from shared.servers import free_port


def tiny_cfg(**kw) -> TrainConfig:
    return TrainConfig(**{
        "preset": "tiny", "block_size": 32, "device": "cpu", "micro_batch": 4, "grad_accum": 2, "max_steps": 20,
        "log_interval": 1, "eval_interval": 5, "eval_batches": 2, "checkpoint_interval": 10, **kw,
    })


def trainer(shards, run_dir, **kw) -> Trainer:
    vocab = TokenShardsMeta.model_validate_json((shards / "meta.json").read_text()).vocab_size
    return Trainer(tiny_cfg(**kw), 7, shards / "train.bin", shards / "val.bin", vocab, run_dir)


def test_resume_from_step_10_reproduces_the_straight_20_step_run_exactly(sample_shards, tmp_path):
    straight = trainer(sample_shards, tmp_path / "straight").fit()
    assert [h["step"] for h in straight.history] == list(range(1, 21))

    # the state of a run stopped after step 10: its checkpoints up to there, its CSV as it was left
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    for path, info in checkpoints.complete(tmp_path / "resumed"):
        if info.step > 10:
            shutil.rmtree(path)
    resumed = trainer(sample_shards, tmp_path / "resumed").fit()

    assert resumed.history == straight.history[10:]  # bit-identical train and validation losses
    csv_steps = [int(line.split(",")[0]) for line in (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()[1:]]
    assert csv_steps == list(range(1, 21))  # rows after the checkpoint were dropped, not duplicated
    assert straight.history[-1]["val_loss"] < straight.history[4]["val_loss"]  # it learns


def test_learning_rate_warms_up_linearly_then_decays_to_min_lr():
    cfg = TrainConfig(max_steps=1000, warmup_steps=100, lr=6e-4, min_lr=6e-5)
    assert lr_at(0, cfg) < lr_at(50, cfg) < lr_at(99, cfg) <= 6e-4
    assert lr_at(100, cfg) == pytest.approx(6e-4)
    assert lr_at(550, cfg) == pytest.approx((6e-4 + 6e-5) / 2)
    assert lr_at(1000, cfg) == pytest.approx(6e-5)
    assert TrainConfig(max_steps=200).warmup == 20 and TrainConfig(max_steps=500_000).warmup == 2000


def _fake_checkpoint(root, step, val_loss, complete=True, prefix=""):
    path = root / f"{prefix}{checkpoints.tag(step)}"
    path.mkdir(parents=True)
    (path / "mp_rank_00_model_states.pt").write_bytes(b"weights")
    if complete:
        info = checkpoints.CheckpointInfo(step=step, tokens_seen=step, val_loss=val_loss, best_val_loss=val_loss,
                                          evals_without_improvement=0, world_size=1, zero_stage=0, model={})
        (path / checkpoints.MARKER).write_text(info.model_dump_json())
    return path


def test_half_written_checkpoints_are_never_picked_and_pruning_keeps_last_three_plus_best(tmp_path):
    for step, val in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5), (5, 2.6), (6, 2.7)]:
        _fake_checkpoint(tmp_path, step, val)
    _fake_checkpoint(tmp_path, 7, 0.5, prefix=".tmp-")  # killed before the rename
    _fake_checkpoint(tmp_path, 8, 0.4, complete=False)  # no marker: never complete
    assert checkpoints.last(tmp_path)[1].step == 6
    assert checkpoints.best(tmp_path)[1].step == 2

    checkpoints.prune(tmp_path, keep=3)
    checkpoints.remove_partial(tmp_path)
    assert [info.step for _, info in checkpoints.complete(tmp_path)] == [2, 4, 5, 6]
    assert not list(tmp_path.glob(".tmp-*"))


def test_checkpoint_of_another_architecture_is_refused_and_left_alone(sample_shards, tmp_path):
    path = _fake_checkpoint(tmp_path, 5, 2.0)
    info = json.loads((path / checkpoints.MARKER).read_text())
    info["model"] = {**GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64, vocab_size=9).to_dict()}
    (path / checkpoints.MARKER).write_text(json.dumps(info))
    before = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.iterdir()))).hexdigest()
    with pytest.raises(ValueError, match="another architecture: n_layer 2 there vs 4 here"):
        trainer(sample_shards, tmp_path)
    assert hashlib.sha256(b"".join(p.read_bytes() for p in sorted(path.iterdir()))).hexdigest() == before


@pytest.mark.parametrize("content, problem", [
    ("{not json", "is not valid JSON: Expecting property name"),
    ('{"gradient_accumulation_steps": 4}', "sets gradient_accumulation_steps; these come from the train settings"),
    ('{"zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}}', "parameter offload needs ZeRO stage 3"),
    ('{"zero_optimization": {"stage": 2, "no_such_knob": 1}}', "invalid zero_optimization"),
])
def test_invalid_deepspeed_config_is_refused_with_the_reason(tmp_path, content, problem):
    path = tmp_path / "ds.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=problem):
        deepspeed_config(tiny_cfg(deepspeed_config=path), "cpu", "fp32")


def test_repository_deepspeed_configs_keep_the_seed_hyperparameters_and_follow_the_plan():
    """The seed's §5.2/5.3 values stay; the ZeRO stage and offload are the plan's (docs/training.md):
    base fits a 12 GB card without offload, large needs the optimizer offloaded, not its parameters."""
    base = deepspeed_config(TrainConfig(preset="base"), "cuda", "bf16")
    assert base["zero_optimization"]["stage"] == 0 and base["bf16"] == {"enabled": True}
    assert "offload_optimizer" not in base["zero_optimization"]
    assert (base["gradient_accumulation_steps"], base["train_micro_batch_size_per_gpu"], base["gradient_clipping"]) == (8, 4, 1.0)
    seed_adamw = {"lr": 6e-4, "betas": [0.9, 0.95], "eps": 1e-8, "weight_decay": 0.1}
    assert seed_adamw.items() <= base["optimizer"]["params"].items()
    large = deepspeed_config(TrainConfig(preset="large"), "cuda", "bf16")
    assert large["zero_optimization"]["stage"] == 2
    assert large["zero_optimization"]["offload_optimizer"] == {"device": "cpu", "pin_memory": True}
    seed_zero3 = deepspeed_config(TrainConfig(preset="large", deepspeed_config=CONFIG_DIR / "deepspeed" / "zero3-offload.json"),
                                  "cuda", "bf16")
    assert seed_zero3["zero_optimization"]["stage"] == 3 and seed_zero3["zero_optimization"]["offload_param"]["device"] == "cpu"


@pytest.mark.slow  # the first run on a machine JIT-compiles DeepSpeedCPUAdam (minutes); cached afterwards
def test_zero2_with_cpu_adam_offload_trains_and_consolidates_to_fp32(sample_shards, tmp_path):
    t = trainer(sample_shards, tmp_path / "run", zero_stage=2, offload="optimizer", max_steps=3, warmup_steps=0)
    result = t.fit()
    assert any(result.best_checkpoint.glob("zero_pp_rank_0_*optim_states.pt"))
    exported = torch.load(export_model(checkpoints.last(tmp_path / "run")[0], tmp_path / "model.pt"))
    model = GPT(GPTConfig(**exported["config"]))
    model.load_state_dict(exported["model"])
    for name, p in t.engine.module.state_dict().items():
        torch.testing.assert_close(exported["model"][name], p.float(), msg=name)


def _rank(rank, port, shards, out):
    import os

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    t = trainer(shards, out / "run", max_steps=4, checkpoint_interval=4, eval_interval=4)
    t.fit()
    torch.save({"weights": t.engine.module.state_dict(), "data": t.batches.state_dict()}, out / f"rank{rank}.pt")


@pytest.mark.slow
def test_two_cpu_ranks_see_different_data_and_keep_identical_weights(sample_shards, tmp_path):
    mp.spawn(_rank, args=(free_port(), sample_shards, tmp_path), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    assert r0["data"]["rng"] != r1["data"]["rng"]
    for name, w in r0["weights"].items():
        assert torch.equal(w, r1["weights"][name]), name
    torch.manual_seed(7)
    initial = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=64, block_size=32, vocab_size=512))
    assert not torch.equal(initial.state_dict()["transformer.h.0.attn.c_attn.weight"],
                           r0["weights"]["transformer.h.0.attn.c_attn.weight"])  # it trained
    last = checkpoints.last(tmp_path / "run")
    assert last[1].world_size == 2
    assert {p.name for p in last[0].glob("trainer_state_rank*.pt")} == {"trainer_state_rank0.pt", "trainer_state_rank1.pt"}


def test_pruning_never_removes_the_checkpoints_kept_for_the_learning_curve(tmp_path):
    for step, val in [(1, 3.0), (2, 1.0), (3, 2.0), (4, 2.5), (5, 2.6), (6, 2.7)]:
        _fake_checkpoint(tmp_path, step, val)
    checkpoints.prune(tmp_path, keep=1, keep_steps=frozenset({1, 3}))
    assert [info.step for _, info in checkpoints.complete(tmp_path)] == [1, 2, 3, 6]


def test_keep_at_fractions_names_steps_of_the_run():
    cfg = TrainConfig(max_steps=400, keep_at_fractions=[1.0, 0.1, 0.25, 0.5, 0.5])
    assert cfg.keep_at_fractions == [0.1, 0.25, 0.5, 1.0]
    assert cfg.kept_steps == [40, 100, 200, 400]
    assert TrainConfig(max_steps=3, keep_at_fractions=[0.01]).kept_steps == [1]
    with pytest.raises(ValueError, match=r"fractions must be in \(0, 1\]"):
        TrainConfig(keep_at_fractions=[0.0])


def test_kept_checkpoints_survive_the_run_and_are_exported(sample_shards, tmp_path):
    result = trainer(sample_shards, tmp_path / "run", keep_at_fractions=[0.25, 0.5], keep_checkpoints=1).fit()
    steps = [info.step for _, info in checkpoints.complete(tmp_path / "run")]
    assert {5, 10, 20} <= set(steps)
    assert result.step == 20
    exported = export_model(tmp_path / "run" / checkpoints.tag(5), tmp_path / "model.pt")
    assert torch.load(exported, weights_only=False)["config"]["n_layer"] == 4


def test_probe_snapshots_hold_the_weights_of_their_step_and_are_not_checkpoints(sample_shards, tmp_path):
    run = tmp_path / "run"
    trainer(sample_shards, run, keep_at_fractions=[0.25], probe_at_fractions=[0.25, 0.75, 0.75]).fit()
    assert sorted(p.parent.name for p in (run / "snapshots").glob("*/model.pt")) == ["step00000005", "step00000015"]
    assert all(path.parent == run for path, _ in checkpoints.complete(run))  # resume never picks a snapshot
    snapshot = torch.load(checkpoints.snapshot_path(run, 5), weights_only=True)
    kept = torch.load(export_model(run / checkpoints.tag(5), tmp_path / "model.pt"), weights_only=False)
    assert snapshot["config"] == kept["config"]
    assert all(torch.equal(snapshot["model"][k], kept["model"][k]) for k in kept["model"])
