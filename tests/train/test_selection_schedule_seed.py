"""Three trainer promises that a run where everything improves together cannot check:

* the tested model is the best-*validation* epoch's, also when training accuracy keeps rising after
  validation accuracy has peaked;
* the optimiser's learning rate follows the linear warm-up + cosine schedule, step by step;
* ``TrainConfig.seed`` seeds the initial weights (different seeds differ, equal seeds agree).

All through the public ``train(config, datasets=..., callbacks=...)`` on tiny in-memory data.
"""

import math

import pytest
import torch

from testing_helpers import Toy
from wsfusion.train import Callback, TrainConfig, evaluate, train

CONFIG = TrainConfig(fusion="late", epochs=4, batch_size=32, feature_dim=8, fused_dim=8,
                     encoder_channels=(4, 4, 4), patience=None, warmup_epochs=0.5, encoder_pool="mean")


@pytest.fixture(autouse=True)
def _one_thread():
    """These models are tiny: one thread is fastest, and immune to a busy machine's oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class Snapshots(Callback):
    """The model's weights when training starts and at the end of every epoch; the lr before every step."""

    def __init__(self) -> None:
        self.initial = None
        self.after_epoch = {}
        self.step_lr = []

    def on_train_start(self, trainer):
        self.initial = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}

    def on_step_start(self, trainer, step):
        self.step_lr.append(trainer.optimizer.param_groups[0]["lr"])

    def on_epoch_end(self, trainer, epoch, metrics):
        self.after_epoch[epoch] = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


class ShuffleValLabelsFrom(Callback):
    """From epoch ``epoch + 1`` on the validation labels are shifted by one class: validation accuracy falls
    while training (on unchanged data) keeps improving."""

    def __init__(self, val: Toy, epoch: int) -> None:
        self.val, self.epoch, self.original = val, epoch, val.labels.clone()

    def on_epoch_start(self, trainer, epoch):
        if epoch == self.epoch:
            self.val.labels.copy_((self.original + 1) % self.val.num_classes)


def test_the_best_epoch_follows_validation_not_training_accuracy():
    data = (Toy(192, 0), Toy(48, 1), Toy(48, 2))
    snapshots = Snapshots()
    config = CONFIG.replace(epochs=6)
    result, model = train(config, datasets=data, callbacks=[ShuffleValLabelsFrom(data[1], 3), snapshots],
                          progress=False)
    val = [row["val_acc"] for row in result["history"]]
    tr = [row["train_acc"] for row in result["history"]]
    best = 1 + max(range(len(val)), key=lambda i: val[i])  # the first epoch of the highest validation accuracy
    # the premise: validation peaked early, training accuracy rose past its value at that epoch afterwards
    assert best <= 3 and max(val[3:]) < val[best - 1] - 0.3
    assert max(tr[best:]) > tr[best - 1] + 0.05
    assert 1 + max(range(len(tr)), key=lambda i: tr[i]) > best
    assert result["best_epoch"] == best
    assert result["val_acc"] == val[best - 1]
    for name, value in model.state_dict().items():  # the returned (and tested) weights are that epoch's
        assert torch.equal(value, snapshots.after_epoch[best][name]), name
    assert result["test_acc"] == evaluate(model, data[2])["acc"]


def _warmup_cosine(step: int, total: int, warmup: int) -> float:
    """The documented schedule, written out: linear warm-up to 1 over ``warmup`` steps, cosine to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * min((step - warmup) / max(1, total - warmup), 1.0)))


def test_the_learning_rate_follows_warmup_cosine_during_a_run():
    data = (Toy(192, 0), Toy(48, 1), Toy(48, 2))
    snapshots = Snapshots()
    config = CONFIG.replace(epochs=4, lr=0.01, warmup_epochs=0.5)
    result, _ = train(config, datasets=data, callbacks=[snapshots], progress=False)
    steps_per_epoch = 192 // 32
    total, warmup = config.epochs * steps_per_epoch, round(config.warmup_epochs * steps_per_epoch)
    assert (total, warmup) == (24, 3)
    expected_steps = [config.lr * _warmup_cosine(t, total, warmup) for t in range(total)]
    assert snapshots.step_lr == pytest.approx(expected_steps, rel=1e-9, abs=1e-15)
    # the premise: the schedule moves (warm-up up, then decay)
    assert expected_steps[0] < expected_steps[warmup] and expected_steps[-1] < 0.1 * config.lr
    # history's "lr" is the rate after each epoch's last step, the last one 0 (cosine to 0 at the budget's end)
    logged = [row["lr"] for row in result["history"]]
    assert logged == pytest.approx([config.lr * _warmup_cosine(e * steps_per_epoch, total, warmup)
                                    for e in range(1, config.epochs + 1)], rel=1e-9, abs=1e-15)
    assert logged[-1] == pytest.approx(0.0, abs=1e-15)


def test_a_constant_schedule_keeps_the_learning_rate():
    data = (Toy(64, 0), Toy(16, 1), Toy(16, 2))
    snapshots = Snapshots()
    config = CONFIG.replace(epochs=2, lr=0.01, lr_schedule="constant")
    result, _ = train(config, datasets=data, callbacks=[snapshots], progress=False)
    assert snapshots.step_lr == [0.01] * 4
    assert [row["lr"] for row in result["history"]] == [0.01, 0.01]


def _initial_weights(seed: int) -> dict[str, torch.Tensor]:
    snapshots = Snapshots()
    data = (Toy(32, 0), Toy(16, 1), Toy(16, 2))
    train(CONFIG.replace(epochs=1, seed=seed), datasets=data, callbacks=[snapshots], progress=False)
    return snapshots.initial


def test_the_config_seed_sets_the_initial_weights():
    torch.manual_seed(123)  # the global state before the run must not matter
    first = _initial_weights(1)
    torch.manual_seed(456)
    again = _initial_weights(1)
    other = _initial_weights(2)
    assert first.keys() == again.keys() == other.keys()
    for name in first:
        assert torch.equal(first[name], again[name]), name
    weights = [n for n, v in first.items() if v.is_floating_point() and v.numel() > 1 and v.std() > 0]
    assert weights, "premise: the model has randomly initialised weights"
    for name in weights:
        assert not torch.equal(first[name], other[name]), f"{name} is the same under seeds 1 and 2"
