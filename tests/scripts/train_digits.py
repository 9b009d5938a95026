"""A quick training run for tests/test_train.py: 192 digits, 6 batches of 32
per epoch, width 0.125, 2 epochs; resumed from OUT's checkpoint if there is
one, the weights saved to OUT/weights.safetensors at the end.

usage: python train_digits.py OUT [PAUSE]
PAUSE: seconds of sleep per SGD step, so that a test can kill the run mid-epoch.
"""

import sys
import time
from pathlib import Path

import torch

from tvm_alexnet import AlexNet
from tvm_alexnet.data import Digits, FullImage
from tvm_alexnet.preprocessing import PREPROCESSING
from tvm_alexnet.train import CHECKPOINT, Recipe, train


def slow_sgd_steps(pause: float) -> None:
    step = torch.optim.SGD.step

    def slow(self, *args, **kwargs):
        time.sleep(pause)
        return step(self, *args, **kwargs)

    torch.optim.SGD.step = slow


def main(out: str, pause: float | None = None) -> None:
    prep = FullImage(PREPROCESSING["paper"])
    train_set = torch.utils.data.Subset(Digits(True, prep), range(192))
    val_set = torch.utils.data.Subset(Digits(False, prep), range(64))
    torch.manual_seed(0)
    model = AlexNet("paper", 10, 0.125)
    model.reset_parameters("torch")
    model.compile("llvm", batch=32)
    if pause is not None:
        slow_sgd_steps(pause)
    train(model, train_set, val_set, Recipe(batch_size=32, epochs=2, workers=0, checkpoint_every=2), out,
          resume=(Path(out) / CHECKPOINT).exists(), progress=False)
    model.save(out + "/weights.safetensors")


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else None)
