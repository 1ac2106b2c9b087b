"""A training run that kills itself with SIGKILL mid-epoch (started by test_trainer.py).

Usage: python kill_worker.py OUT_DIR FUSION KILL_AT_STEP THREADS (the parent's torch thread count, so that
float reductions, and so the metrics, match the parent's bit for bit).
"""

import os
import signal
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # testing_helpers

from test_trainer import DATA, config_for  # noqa: E402

from wsfusion.train import Callback, train  # noqa: E402


class Kill(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, step):
        if step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: like the OOM killer


if __name__ == "__main__":
    out, fusion, step, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    train(config_for(fusion), out, datasets=DATA, callbacks=[Kill(step)], progress=False)
