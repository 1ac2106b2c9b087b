"""A two-process training run for test_distributed.py (started by it, one process per rank).

Usage: python ddp_worker.py OUT_DIR [DIE_AT_STEP]: rank 1 exits abruptly at that step.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from test_trainer import CONFIG, DATA  # noqa: E402

from wsfusion.train import Callback, train  # noqa: E402


class Die(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, trainer, step):
        if step == self.step:
            os._exit(3)  # a crash without any cleanup, like a killed process


if __name__ == "__main__":
    out = sys.argv[1]
    callbacks = [Die(int(sys.argv[2]))] if len(sys.argv) > 2 and os.environ["RANK"] == "1" else []
    try:
        result, model = train(CONFIG, out, datasets=DATA, callbacks=callbacks, progress=False)
    except RuntimeError as exc:
        print(f"ERROR: {exc}", flush=True)
        sys.exit(1)
    # Parameters only: BatchNorm running statistics are per-rank buffers (DDP broadcasts them each forward).
    checksum = sum(float(p.double().sum()) for p in model.parameters())
    print(json.dumps({"test_acc": result["test_acc"], "history": result["history"], "checksum": checksum}))
