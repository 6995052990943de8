"""Shared test settings.

Thread counts are fixed *before* any notebook kernel starts (kernels inherit this process's
environment), so the stored outputs were made and are compared under the same conditions.
``setdefault`` keeps a value the caller chose, e.g. ``OMP_NUM_THREADS=1 make test``.
"""

import os

for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "2")
os.environ.setdefault("PYTHONHASHSEED", "0")
# Stored outputs were computed on a CPU; a GPU gives different last digits.
os.environ.setdefault("LORA_TEACH_DEVICE", "cpu")

import matplotlib  # noqa: E402  (after the environment is set)

matplotlib.use("Agg")

# The notes' 4x5 example exactly as printed, used by several test modules.
NOTES_W = [
    [1, 7, 2, 8, 5],
    [2, 10, 4, 12, 10],
    [3, 15, 12, 18, 27],
    [4, 12, 16, 16, 36],
]
