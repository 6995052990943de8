"""pytest settings for the whole repository (unit tests and notebooks alike).

Thread counts are fixed *before* any notebook kernel starts (kernels inherit this process's
environment), so stored outputs are made and compared under the same settings; ``setdefault``
keeps a value the caller chose, e.g. ``OMP_NUM_THREADS=1 make test``. The plugin in
``tests/nbval_tolerance.py`` lets nbval compare results of float training within the
tolerance a cell states, and holds the cell's asserts about them to a wider margin.
"""

import os
import pathlib

# Matplotlib's font list is cached per user; a cache written by another checkout's environment
# (since deleted) makes every plot print "findfont: ... not found" to stderr. The tests keep
# their own cache in build/, and build it here once, before any notebook kernel starts.
os.environ.setdefault("MPLCONFIGDIR", str(pathlib.Path(__file__).parent / "build" / "matplotlib"))
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(variable, "2")
os.environ.setdefault("PYTHONHASHSEED", "0")

import matplotlib.font_manager  # noqa: E402,F401  (builds the font cache if it is missing)

pytest_plugins = ["tests.nbval_tolerance"]
