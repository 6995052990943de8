"""Rank, linear independence and the C R factorisation.

Two kinds of arithmetic are used on purpose:

* **exact** (sympy rationals): rank, rref, pivot columns and the C R factorisation.
  Exact arithmetic gives the textbook answer for small integer matrices such as the
  source notes' 4x5 example, with no rounding to argue about.
* **floating point** (numpy): singular values and the *numerical* rank. Real weight
  matrices are floats, and a tiny rounding error makes every float matrix "full rank"
  in exact arithmetic, so there we count singular values above a tolerance.

Every public function accepts a list of rows, a numpy array or a sympy Matrix, and raises
a clear ``ValueError``/``TypeError`` naming the problem when the input is not a non-empty
2-D matrix of real numbers.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from lora_teach.checks import check_int

# ---------------------------------------------------------------------------
# Input checking
# ---------------------------------------------------------------------------

def _rows_of(values) -> list[list]:
    """Return ``values`` as a list of rows, checking that it is a non-empty 2-D table."""
    if isinstance(values, sympy.MatrixBase):
        rows = values.tolist()
    elif isinstance(values, np.ndarray):
        if values.ndim != 2:
            raise ValueError(f"expected a 2-D matrix, got an array with {values.ndim} "
                             f"dimension(s) and shape {values.shape}")
        rows = values.tolist()
    elif isinstance(values, (list, tuple)):
        rows = list(values)
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple, np.ndarray)):
                raise ValueError(f"expected a 2-D matrix (a list of rows), but row {i} is "
                                 f"a {type(row).__name__}, not a list")
            rows[i] = list(row)
    else:
        raise TypeError(f"values must be a matrix (list of rows, numpy array or sympy Matrix), "
                        f"got {type(values).__name__}")
    if len(rows) == 0 or len(rows[0]) == 0:
        raise ValueError("values must be a non-empty matrix, got one with no rows or no columns")
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"ragged rows: row 0 has {width} entries but row {i} has {len(row)}")
    return rows


def _check_entry(entry, i: int, j: int) -> None:
    """Raise a TypeError/ValueError if ``entry`` (at row i, column j) is not a finite real."""
    if isinstance(entry, sympy.Basic):
        if not (entry.is_number and entry.is_real):
            raise TypeError(f"entry ({i}, {j}) is {entry!r}, not a real number")
        return
    if isinstance(entry, (bool, np.bool_)) or not isinstance(entry, numbers.Real):
        raise TypeError(f"entry ({i}, {j}) is {entry!r} of type {type(entry).__name__}, "
                        f"not a real number")
    if not np.isfinite(float(entry)):
        raise ValueError(f"entry ({i}, {j}) is {entry!r}; entries must be finite")


def _exact(entry) -> sympy.Expr:
    """One checked entry as an exact sympy number (floats keep their exact binary value)."""
    if isinstance(entry, sympy.Float):
        return sympy.Rational(entry)
    if isinstance(entry, sympy.Basic):
        return entry
    if isinstance(entry, numbers.Integral):
        return sympy.Integer(int(entry))
    if isinstance(entry, Fraction):
        return sympy.Rational(entry.numerator, entry.denominator)
    fraction = Fraction(float(entry))
    return sympy.Rational(fraction.numerator, fraction.denominator)


def as_exact_matrix(values) -> sympy.Matrix:
    """Return ``values`` as a sympy Matrix of exact rationals.

    Integers stay integers; a float becomes the rational number it *exactly* stores
    (0.1 becomes 3602879701896397/36028797018963968), so exact rank sees every rounding error.
    """
    rows = _rows_of(values)
    exact_rows = []
    for i, row in enumerate(rows):
        exact_row = []
        for j, entry in enumerate(row):
            _check_entry(entry, i, j)
            exact_row.append(_exact(entry))
        exact_rows.append(exact_row)
    return sympy.Matrix(exact_rows)


def as_float_array(values) -> np.ndarray:
    """Return ``values`` as a 2-D float64 numpy array, after the same checks as above."""
    rows = _rows_of(values)
    for i, row in enumerate(rows):
        for j, entry in enumerate(row):
            _check_entry(entry, i, j)
    return np.array([[float(entry) for entry in row] for row in rows], dtype=np.float64)


# ---------------------------------------------------------------------------
# Exact rank, rref, pivots and dependencies
# ---------------------------------------------------------------------------

def exact_rank(values) -> int:
    """Number of linearly independent columns (= rows), computed in exact arithmetic."""
    return int(as_exact_matrix(values).rank())


def rref(values) -> tuple[sympy.Matrix, tuple[int, ...]]:
    """Reduced row echelon form and the (0-based) pivot column indices, exactly."""
    reduced, pivots = as_exact_matrix(values).rref()
    return reduced, tuple(int(p) for p in pivots)


def pivot_columns(values) -> list[int]:
    """0-based indices of the pivot columns: each is independent of the columns before it."""
    return list(rref(values)[1])


def dependent_columns(values) -> list[int]:
    """0-based indices of the columns that are combinations of earlier pivot columns."""
    pivots = set(pivot_columns(values))
    width = as_exact_matrix(values).cols
    return [j for j in range(width) if j not in pivots]


def dependency_coefficients(values) -> dict[int, dict[int, sympy.Rational]]:
    """For each dependent column j: the coefficients that build it from the pivot columns
    before it, as ``{j: {pivot: coefficient}}`` (0-based), so C_j = sum c_p * C_p.

    They are the entries of column j of rref(W) in its pivot rows: row reduction keeps every
    linear relation between the columns, and in rref the pivot columns have become the unit
    vectors e_1, e_2, ... (Pivots after j always get coefficient 0, so they are left out.)
    """
    reduced, pivots = rref(values)
    return {j: {p: reduced[row, j] for row, p in enumerate(pivots) if p < j}
            for j in dependent_columns(values)}


def column_name(index: int) -> str:
    """Name of a 0-based column index as the notes write it: 0 -> 'C1'."""
    if isinstance(index, bool) or not isinstance(index, numbers.Integral):
        raise TypeError(f"column index must be an integer, got {type(index).__name__}")
    if index < 0:
        raise ValueError(f"column index must be >= 0, got {index}")
    return f"C{index + 1}"


def format_relation(target: int, combination: dict) -> str:
    """Write a column relation the way the notes do, e.g. 'C4 = 1·C1 + 1·C2'.

    ``combination`` maps 0-based column indices to coefficients.
    """
    check_int(target, "target", minimum=0)
    if not isinstance(combination, dict):
        raise TypeError(f"combination must be a dict {{column: coefficient}}, "
                        f"got {type(combination).__name__}")
    if not combination:
        return f"{column_name(target)} = 0"
    terms = " + ".join(f"{c}·{column_name(p)}" for p, c in combination.items())
    return f"{column_name(target)} = {terms}"


def relation_residual(values, target: int, combination: dict[int, object]) -> sympy.Matrix:
    """Exact residual  C_target - sum_j c_j * C_j  of a claimed column relation.

    ``combination`` maps 0-based column indices to coefficients. A zero residual means the
    claim holds; each nonzero entry is a row in which the claim breaks.
    """
    matrix = as_exact_matrix(values)
    if not isinstance(combination, dict):
        raise TypeError(f"combination must be a dict {{column: coefficient}}, "
                        f"got {type(combination).__name__}")
    check_int(target, "target", minimum=0)
    for j in [target, *combination]:
        if isinstance(j, bool) or not isinstance(j, numbers.Integral):
            raise TypeError(f"column index must be an integer, got {j!r}")
        if not 0 <= j < matrix.cols:
            raise ValueError(f"column index {j} is out of range for a matrix with "
                             f"{matrix.cols} columns")
    combined = sympy.zeros(matrix.rows, 1)
    for j, coefficient in combination.items():
        combined += as_exact_matrix([[coefficient]])[0, 0] * matrix[:, j]
    return matrix[:, target] - combined


@dataclass(frozen=True)
class CRFactorization:
    """W = C R: C holds W's pivot columns (d x r), R the nonzero rows of rref(W) (r x k)."""

    C: sympy.Matrix
    R: sympy.Matrix
    pivots: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.pivots)

    def product(self) -> sympy.Matrix:
        return self.C * self.R


def cr_factorization(values) -> CRFactorization:
    """Factor W = C R exactly (Strang's column-row factorisation).

    C is made of W's own independent columns, so it is easy to read; R says how to mix them
    to get every column of W. C R rebuilds W exactly, and stores r(d + k) numbers instead of dk.
    """
    matrix = as_exact_matrix(values)
    reduced, pivots = rref(matrix)
    if not pivots:
        raise ValueError("the zero matrix has rank 0 and no C R factorisation with r >= 1")
    columns = matrix.extract(list(range(matrix.rows)), list(pivots))
    rows = reduced[: len(pivots), :]
    return CRFactorization(C=columns, R=rows, pivots=pivots)


# ---------------------------------------------------------------------------
# Numerical rank from the singular values
# ---------------------------------------------------------------------------

def singular_values(values) -> np.ndarray:
    """Singular values of the matrix, largest first (float64)."""
    return np.linalg.svd(as_float_array(values), compute_uv=False)


def default_tolerance(values) -> float:
    """numpy's default: sigma_max * max(d, k) * machine epsilon.

    Singular values below this are indistinguishable from rounding error in float64.
    """
    matrix = as_float_array(values)
    sigma = np.linalg.svd(matrix, compute_uv=False)
    return float(sigma[0] * max(matrix.shape) * np.finfo(np.float64).eps)


def numerical_rank(values, tol: float | None = None) -> int:
    """Number of singular values strictly greater than ``tol``.

    With ``tol=None`` the default tolerance above is used. Choosing ``tol`` is a modelling
    decision: it says how small a direction must be before we treat it as noise.
    """
    sigma = singular_values(values)
    if tol is None:
        tol = default_tolerance(values)
    if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a real number, got {type(tol).__name__}")
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    return int(np.sum(sigma > tol))
