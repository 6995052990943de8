"""Making a run repeatable: seeds, and one CPU thread for the small models of the course.

Matrix products split their sums across threads, and a different split adds the same
numbers in a different order. After a few hundred training steps those last-digit
differences change a printed score. On one thread every run on the same machine gives the
same numbers, whatever ``OMP_NUM_THREADS`` says; the course's models are small enough that
this costs little. (Another kind of CPU can still differ in the last digits: its vector
instructions round differently. That is why the tests compare trained scores within a
stated tolerance.)
"""

from __future__ import annotations

import contextlib
import random

import numpy as np
import torch

from lora_teach.checks import check_int


def set_seed(seed: int) -> None:
    """Seed Python, numpy and torch so a run can be repeated exactly."""
    seed = check_int(seed, "seed", minimum=0)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def one_thread():
    """Run the enclosed torch code on one CPU thread, then restore the thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
