import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from testing_helpers import Toy

from wsfusion import data
from wsfusion.train import Callback, TrainConfig, Trainer, evaluate, load_checkpoint, save_checkpoint, train
from wsfusion.train import checkpoint as checkpoint_module
from wsfusion.train import trainer as trainer_module
from wsfusion.train.trainer import CHECKPOINT, METRICS, RESULT, batches, warmup_cosine

KILL_WORKER = Path(__file__).with_name("kill_worker.py")


DATA = (Toy(192, 0), Toy(48, 1), Toy(48, 2))
# The toy label is a global shift of the inputs, which the mean of the tokens shows directly.
CONFIG = TrainConfig(fusion="late", epochs=4, batch_size=32, feature_dim=8, fused_dim=8,
                     encoder_channels=(4, 4, 4), patience=None, warmup_epochs=0.5, encoder_pool="mean")


class StopAt(Callback):
    """Simulates a kill in the middle of an epoch."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, step):
        if step == self.step:
            raise KeyboardInterrupt


def test_deterministic_under_a_seed(tmp_path):
    a, model_a = train(CONFIG, tmp_path / "a", datasets=DATA, progress=False)
    b, model_b = train(CONFIG, tmp_path / "b", datasets=DATA, progress=False)
    assert a["history"] == [{**row, "seconds": a["history"][i]["seconds"]} for i, row in enumerate(b["history"])]
    assert a["test_acc"] == b["test_acc"]
    for (name, p), q in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(p, q), name


def test_it_learns(tmp_path):
    result, _ = train(CONFIG.replace(epochs=6), datasets=DATA, progress=False)
    assert result["test_acc"] > 0.8
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"]


def without_seconds(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def config_for(fusion: str) -> TrainConfig:
    return CONFIG.replace(fusion=fusion, fusion_options={"segments": 2, "node_dim": 8, "k": 2} if fusion == "ws-gnn" else {})


class CountSteps(Callback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, trainer, step):
        self.steps += 1


STEPS_PER_EPOCH = 6  # 192 samples, batch 32


@pytest.mark.parametrize("fusion", ["late", "ws-gnn"])
def test_resume_after_a_kill_reaches_the_same_final_metrics(tmp_path, fusion):
    config = config_for(fusion)
    full, full_model = train(config, tmp_path / "full", datasets=DATA, progress=False)
    killed_at = 2 * STEPS_PER_EPOCH + 3  # in the middle of epoch 3
    # A real kill: SIGKILL in another process, no exception handler or finally runs.
    worker = subprocess.run([sys.executable, str(KILL_WORKER), str(tmp_path / "killed"), fusion, str(killed_at),
                             str(torch.get_num_threads())],
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert worker.returncode == -signal.SIGKILL, worker.stderr
    assert not (tmp_path / "killed" / RESULT).exists()
    assert load_checkpoint(tmp_path / "killed" / CHECKPOINT)["epoch"] == 2 < config.epochs
    counter = CountSteps()
    resumed, resumed_model = train(config, tmp_path / "killed", resume=True, datasets=DATA, callbacks=[counter],
                                   progress=False)
    # Only the two epochs after the checkpoint ran: a resume that restarts would run all four.
    assert counter.steps == (config.epochs - 2) * STEPS_PER_EPOCH
    assert without_seconds(resumed["history"]) == without_seconds(full["history"])
    assert resumed["test_acc"] == full["test_acc"]
    for p, q in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(p, q)
    lines = (tmp_path / "killed" / METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_a_kill_while_the_first_checkpoint_is_written_does_not_duplicate_epochs(tmp_path, monkeypatch):
    real_save = trainer_module.save_checkpoint

    def killed_while_saving(state, path):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module, "save_checkpoint", killed_while_saving)
    with pytest.raises(KeyboardInterrupt):
        train(CONFIG, tmp_path, datasets=DATA, progress=False)
    assert not (tmp_path / CHECKPOINT).exists()
    monkeypatch.setattr(trainer_module, "save_checkpoint", real_save)
    train(CONFIG, tmp_path, resume=True, datasets=DATA, progress=False)
    lines = (tmp_path / METRICS).read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]


def test_a_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    save_checkpoint({"epoch": 1, "weight": torch.arange(4.0)}, path)
    real_save = torch.save

    def half_written(obj, f):
        real_save(obj, f)
        f.seek(0)
        f.truncate(f.tell() + 7)  # a torn file, then the process dies
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.torch, "save", half_written)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2, "weight": torch.zeros(4)}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and torch.equal(state["weight"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT]  # no temporary file left behind


class BreakAfter(Callback):
    """From epoch ``epoch`` on the model is broken (zero weights every step): validation accuracy drops."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_step_end(self, trainer, step):
        if step > self.epoch * STEPS_PER_EPOCH:
            with torch.no_grad():
                for p in trainer.model.parameters():
                    p.zero_()


def test_the_best_validation_model_is_tested_and_returned(tmp_path):
    result, model = train(CONFIG.replace(epochs=6), tmp_path, datasets=DATA, callbacks=[BreakAfter(4)], progress=False)
    val = [row["val_acc"] for row in result["history"]]
    assert max(val[4:]) < max(val[:4]) - 0.3  # the premise: validation peaked, then collapsed
    assert result["best_epoch"] == 1 + max(range(4), key=lambda i: val[i]) and result["val_acc"] == max(val)
    assert result["test_acc"] == evaluate(model, DATA[2])["acc"] > 0.8
    best = load_checkpoint(tmp_path / CHECKPOINT)["best"]["model"]
    for name, value in model.state_dict().items():
        assert torch.equal(value, best[name]), name


def test_checkpoint_loads_weights_only_and_round_trips(tmp_path):
    _, model = train(CONFIG.replace(epochs=1), tmp_path, datasets=DATA, progress=False)
    state = load_checkpoint(tmp_path / CHECKPOINT)  # weights_only=True inside
    assert set(state) >= {"config", "epoch", "model", "optimizer", "scheduler", "rng", "history", "best", "callbacks"}
    assert TrainConfig.from_dict(state["config"]) == CONFIG.replace(epochs=1)
    fresh = Trainer(CONFIG.replace(epochs=1), tmp_path, datasets=DATA, progress=False)
    fresh.load_state_dict(state)
    for key, value in state["model"].items():
        assert torch.equal(fresh.model.state_dict()[key], value)


def test_resume_refuses_a_different_config(tmp_path):
    train(CONFIG.replace(epochs=1), tmp_path, datasets=DATA, progress=False)
    with pytest.raises(ValueError, match=r"cannot resume: the checkpoint was written with a different config \{'lr': \(0.002, 0.01\)\}"):
        train(CONFIG.replace(epochs=1, lr=0.01), tmp_path, resume=True, datasets=DATA, progress=False)


def test_early_stopping(tmp_path):
    result, _ = train(CONFIG.replace(epochs=10, lr=1e-12, patience=2), datasets=DATA, progress=False)
    assert result["stopped_early"]
    assert result["epochs_run"] == result["best_epoch"] + 2


def test_warmup_cosine_schedule():
    factor = warmup_cosine(total_steps=10, warmup_steps=2)
    assert [round(factor(s), 4) for s in (0, 1, 2, 6, 10)] == [0.5, 1.0, 1.0, 0.5, 0.0]


def test_batches_shard_the_same_permutation_across_ranks():
    toy = Toy(10, 0)
    seen = []
    for rank in range(3):
        gen = torch.Generator().manual_seed(1)
        idx = torch.cat([index for _, _, index in batches(toy, 2, generator=gen, rank=rank, world_size=3)])
        assert idx.numel() == 4  # ceil(10 / 3), padded by wrapping around
        seen.append(idx)
    assert set(torch.cat(seen).tolist()) == set(range(10))


def test_config_validation():
    with pytest.raises(ValueError, match=rf"data must be one of {re.escape(str(data.available()))}, got 'mnist'"):
        TrainConfig(data="mnist")
    with pytest.raises(ValueError, match=r"epochs must be a positive integer, got 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError, match=r"modality_dropout must be a number in \[0, 1\), got 1.0"):
        TrainConfig(modality_dropout=1.0)
    with pytest.raises(ValueError, match=r"unknown TrainConfig fields \['lrate'\]"):
        TrainConfig.from_dict({"lrate": 1.0})


@pytest.mark.parametrize("mode", ["set", "rigl"])
def test_rewirer_in_the_trainer_resumes_to_the_same_structure_and_metrics(tmp_path, mode):
    from wsfusion.train import Rewirer

    config = CONFIG.replace(fusion="ws-sparse", fusion_options={"nodes_per_modality": 8, "k": 4})
    full, full_model = train(config, tmp_path / "full", datasets=DATA, progress=False,
                             callbacks=[Rewirer(delta_t=2, alpha=0.3, mode=mode, seed=1)])
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", datasets=DATA, progress=False,
              callbacks=[Rewirer(delta_t=2, alpha=0.3, mode=mode, seed=1), StopAt(2 * 6 + 3)])
    resumed, resumed_model = train(config, tmp_path / "killed", resume=True, datasets=DATA, progress=False,
                                   callbacks=[Rewirer(delta_t=2, alpha=0.3, mode=mode, seed=1)])
    original = full_model.fusion.graph.edge_index
    for a, b in zip(full_model.fusion.layers, resumed_model.fusion.layers):
        assert torch.equal(a.edge_index, b.edge_index)
        assert torch.equal(a.weight, b.weight)
    assert not torch.equal(full_model.fusion.layers[0].edge_index, original)  # it did rewire
    assert without_seconds(resumed["history"]) == without_seconds(full["history"])


class Snapshots(Callback):
    """The model's full state (edges included) at the end of every epoch."""

    def __init__(self) -> None:
        self.states = {}

    def on_epoch_end(self, trainer, epoch, metrics):
        self.states[epoch] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def test_the_best_model_under_rewiring_comes_back_with_its_own_edges(tmp_path):
    from wsfusion.train import Rewirer

    config = CONFIG.replace(epochs=6, fusion="ws-sparse", fusion_options={"nodes_per_modality": 8, "k": 4})
    snapshots = Snapshots()
    # Rewiring continues after validation peaks (the model is broken from epoch 5 on).
    rewirer = Rewirer(delta_t=2, alpha=0.3, mode="set", seed=1, end_step=6 * STEPS_PER_EPOCH)
    result, model = train(config, tmp_path, datasets=DATA, callbacks=[rewirer, BreakAfter(4), snapshots],
                          progress=False)
    best = snapshots.states[result["best_epoch"]]
    final = snapshots.states[6]
    edge_keys = [k for k in best if k.endswith("edge_index")]
    assert edge_keys and any(not torch.equal(best[k], final[k]) for k in edge_keys)  # the premise
    for name, value in model.state_dict().items():
        assert torch.equal(value, best[name]), name
    assert result["test_acc"] == evaluate(model, DATA[2])["acc"]
