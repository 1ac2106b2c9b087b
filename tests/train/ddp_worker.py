"""A two-process training run for test_distributed.py (started by it, one process per rank).

Usage: python ddp_worker.py OUT_DIR [DIE_AT_STEP [stall]]: rank 1 exits abruptly at that step
(or, with ``stall``, hangs there without exiting, like a rank stuck in I/O or a deadlock).

Each rank saves its parameters, by name, before and after training to
``OUT_DIR/params-rank{RANK}-{start,end}.pt`` for the test to compare tensor by tensor.
"""

import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # testing_helpers

from test_trainer import CONFIG, DATA  # noqa: E402

from wsfusion.train import Callback, train  # noqa: E402


def save_parameters(model, path):
    """Parameters only: BatchNorm running statistics are per-rank buffers (DDP broadcasts them each forward)."""
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    torch.save({name: p.detach().cpu().clone() for name, p in module.named_parameters()}, path)


class SaveAtStart(Callback):
    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer):
        save_parameters(trainer.model, self.path)


class Die(Callback):
    def __init__(self, step: int, stall: bool = False) -> None:
        self.step = step
        self.stall = stall

    def on_step_end(self, trainer, step):
        if step == self.step:
            if self.stall:
                time.sleep(3600)  # alive but never reaching the next collective
            os._exit(3)  # a crash without any cleanup, like a killed process


if __name__ == "__main__":
    out = sys.argv[1]
    rank = os.environ["RANK"]
    callbacks = [SaveAtStart(os.path.join(out, f"params-rank{rank}-start.pt"))]
    if len(sys.argv) > 2 and rank == "1":
        callbacks.append(Die(int(sys.argv[2]), stall=len(sys.argv) > 3 and sys.argv[3] == "stall"))
    try:
        result, model = train(CONFIG, out, datasets=DATA, callbacks=callbacks, progress=False)
    except RuntimeError as exc:
        print(f"ERROR: {exc}", flush=True)
        sys.exit(1)
    save_parameters(model, os.path.join(out, f"params-rank{rank}-end.pt"))
    checksum = sum(float(p.double().sum()) for p in model.parameters())
    print(json.dumps({"test_acc": result["test_acc"], "history": result["history"], "checksum": checksum}))
