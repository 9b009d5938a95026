"""AlexNet (Krizhevsky, Sutskever and Hinton, 2012) with every layer compiled by Apache TVM."""

import os

# TVM's CPU runtime runs one thread unless told otherwise, and reads this once
# when it starts.
os.environ.setdefault("TVM_NUM_THREADS", str(len(os.sched_getaffinity(0))))

from .model import AlexNet  # noqa: E402
from .spec import LRN_CONVENTIONS, VARIANTS, network  # noqa: E402

__all__ = ["AlexNet", "LRN_CONVENTIONS", "VARIANTS", "network"]
__version__ = "0.1.0"
