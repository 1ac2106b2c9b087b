"""Training, evaluation and comparison of fusion strategies (the only place with training logic)."""

from wsfusion.train.callbacks import Callback, TemperatureSchedule
from wsfusion.train.checkpoint import load_checkpoint, save_checkpoint
from wsfusion.train.config import TrainConfig
from wsfusion.train.rewirer import MODES as REWIRE_MODES
from wsfusion.train.rewirer import Rewirer
from wsfusion.train.trainer import Trainer, batches, build_datasets, check_config, evaluate, train

__all__ = [
    "TrainConfig", "Trainer", "Callback", "train", "evaluate", "batches",
    "build_datasets", "check_config", "save_checkpoint", "load_checkpoint",
    "Rewirer", "REWIRE_MODES", "TemperatureSchedule",
]
