"""train() under a launcher, for tests/test_parallel.py: 128 digits, batches of
32, width 0.125; resumed from OUT's checkpoint if there is one.

usage: python train_parallel.py OUT TOWERS EPOCHS PAUSE
in each process with the environment torchrun gives it (RANK, WORLD_SIZE,
MASTER_ADDR/PORT), or without for one process. PAUSE: seconds of sleep per SGD
step, so that a test can kill a rank mid-run.
"""

import sys
import time
from pathlib import Path

import torch

from tvm_alexnet import AlexNet
from tvm_alexnet.data import Digits, FullImage
from tvm_alexnet.parallel import close, from_environment
from tvm_alexnet.preprocessing import PREPROCESSING
from tvm_alexnet.towers import DistributedTowerAlexNet
from tvm_alexnet.train import CHECKPOINT, Recipe, train


def slow_sgd_steps(pause: float) -> None:
    step = torch.optim.SGD.step

    def slow(self, *args, **kwargs):
        time.sleep(pause)
        return step(self, *args, **kwargs)

    torch.optim.SGD.step = slow


def main(out: str, towers: int, epochs: int, pause: float) -> None:
    parallel = from_environment(towers, timeout_s=60)
    prep = FullImage(PREPROCESSING["paper"])
    train_set = torch.utils.data.Subset(Digits(True, prep), range(128))
    val_set = torch.utils.data.Subset(Digits(False, prep), range(32))
    torch.manual_seed(0)
    model = AlexNet("paper", 10, 0.125)
    model.reset_parameters("torch")
    if parallel.mode == "towers":
        model_state = model.state_dict()
        model = DistributedTowerAlexNet(model.spec)
        model.load_single_state_dict(model_state)
    model.compile("llvm", batch=32 // parallel.data_shards)
    slow_sgd_steps(pause)
    train(model, train_set, val_set, Recipe(batch_size=32, epochs=epochs, workers=0, checkpoint_every=1), out,
          resume=(Path(out) / CHECKPOINT).exists(), progress=False, parallel=parallel)
    close(parallel)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
