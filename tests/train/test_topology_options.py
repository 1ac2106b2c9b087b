"""Learnable topology in the trainer: its own learning rate, and the temperature schedule (state resumes)."""

import pytest
import torch

from wsfusion.topology import LearnableWSGraph
from wsfusion.train import TemperatureSchedule, TrainConfig, train
from wsfusion.train.checkpoint import load_checkpoint
from wsfusion.train.trainer import CHECKPOINT, Trainer

from test_trainer import CONFIG, DATA, STEPS_PER_EPOCH, StopAt

LEARNABLE = CONFIG.replace(fusion="ws-sparse", fusion_options={"nodes_per_modality": 8, "k": 4, "topology": "learnable"})


def graphs(model):
    return [m for m in model.modules() if isinstance(m, LearnableWSGraph)]


def test_topology_parameters_get_their_own_group_and_learning_rate():
    trainer = Trainer(LEARNABLE.replace(topology_lr=0.05), datasets=DATA, progress=False)
    model_group, topology_group = trainer.optimizer.param_groups
    topology = {id(p) for g in graphs(trainer.model) for p in g.parameters()}
    assert topology and {id(p) for p in topology_group["params"]} == topology
    assert not topology & {id(p) for p in model_group["params"]}
    assert len(model_group["params"]) + len(topology_group["params"]) == len(list(trainer.model.parameters()))
    assert (topology_group["initial_lr"], topology_group["weight_decay"]) == (0.05, 0.0)
    assert (model_group["initial_lr"], model_group["weight_decay"]) == (CONFIG.lr, CONFIG.weight_decay)
    # Without the option there is one group, as before.
    assert len(Trainer(LEARNABLE, datasets=DATA, progress=False).optimizer.param_groups) == 1


def test_the_topology_learning_rate_is_the_one_the_topology_trains_with():
    def topology_change(topology_lr):
        trainer = Trainer(LEARNABLE.replace(epochs=1, topology_lr=topology_lr), datasets=DATA, progress=False)
        before = [p.detach().clone() for g in graphs(trainer.model) for p in g.parameters()]
        others = [p.detach().clone() for p in trainer.optimizer.param_groups[0]["params"]]
        trainer.fit()
        after = [p.detach() for g in graphs(trainer.model) for p in g.parameters()]
        moved = max((a - b).abs().max().item() for a, b in zip(after, before))
        others_moved = max((p.detach() - q).abs().max().item()
                           for p, q in zip(trainer.optimizer.param_groups[0]["params"], others))
        return moved, others_moved

    frozen, others_frozen_run = topology_change(1e-12)
    fast, others_fast_run = topology_change(0.1)
    assert frozen < 1e-9 < others_frozen_run  # the model trained, its topology did not
    assert fast > 1e-3 and others_fast_run > 1e-3


def test_topology_lr_needs_a_learnable_topology():
    with pytest.raises(ValueError, match=r"topology_lr is set but the model \('late'.*has no learnable topology"):
        Trainer(CONFIG.replace(topology_lr=0.1), datasets=DATA, progress=False)
    with pytest.raises(ValueError, match=r"topology_lr \(or None\) must be a finite number > 0, got 0"):
        TrainConfig(topology_lr=0)


def test_the_temperature_schedule_anneals_over_the_budget_and_resumes(tmp_path):
    config = LEARNABLE.replace(temperature_schedule=True,
                               fusion_options={**LEARNABLE.fusion_options,
                                               "topology_options": {"temperature": 2.0, "final_temperature": 0.5}})
    full, full_model = train(config, tmp_path / "full", datasets=DATA, progress=False)
    assert [g.temperature for g in graphs(full_model)] == pytest.approx([0.5] * len(graphs(full_model)))

    killed_at = 2 * STEPS_PER_EPOCH + 3  # a kill in epoch 3 of 4: the checkpoint is at epoch 2
    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", datasets=DATA, progress=False, callbacks=[StopAt(killed_at)])
    (state,) = [s["state"] for s in load_checkpoint(tmp_path / "killed" / CHECKPOINT)["callbacks"]
                if s["type"] == "TemperatureSchedule"]
    # Geometric annealing: halfway through the budget, tau = 2 * (0.5 / 2) ** 0.5 = 1.
    assert state["progress"] == pytest.approx(0.5) and state["temperatures"] == pytest.approx([1.0] * len(graphs(full_model)))

    trainer = Trainer(config, tmp_path / "killed", datasets=DATA, progress=False)
    assert trainer.resume()
    (schedule,) = [cb for cb in trainer.callbacks if isinstance(cb, TemperatureSchedule)]
    assert schedule.progress == pytest.approx(0.5)
    # A fresh model starts at tau = 2; the resumed schedule puts it back to 1 before the first step.
    assert [g.temperature for g in graphs(trainer.model)] == pytest.approx([2.0] * len(graphs(full_model)))
    schedule.on_train_start(trainer)
    assert [g.temperature for g in graphs(trainer.model)] == pytest.approx([1.0] * len(graphs(full_model)))

    resumed, resumed_model = train(config, tmp_path / "killed", resume=True, datasets=DATA, progress=False)
    assert resumed["test_acc"] == full["test_acc"]
    for p, q in zip(full_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(p, q)
