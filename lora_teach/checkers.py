"""Exercise checkers: tell the student whether an answer is right and, if not, what is wrong.

Each checker computes the expected answer from the problem itself (never a stored answer) and
returns a :class:`Feedback`. In a notebook the feedback prints as one line starting with
"Correct" or "Not yet", followed by the reason; "Not answered yet" when the answer is still
``None``. Checkers never raise on a wrong answer: a wrong type is feedback too.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from lora_teach import linalg
from lora_teach.checks import is_int


@dataclass(frozen=True)
class Feedback:
    """The verdict on one answer: ``correct`` and a message that says why."""

    correct: bool
    message: str

    def __repr__(self) -> str:
        return self.message

    def __bool__(self) -> bool:
        return self.correct


NOT_ANSWERED = Feedback(False, "Not answered yet: replace None with your answer and run the cell.")


def _right(reason: str) -> Feedback:
    return Feedback(True, f"Correct. {reason}")


def _wrong(reason: str) -> Feedback:
    return Feedback(False, f"Not yet. {reason}")


class ExerciseSetupError(ValueError):
    """A mistake in how a notebook calls a checker (not in the student's answer)."""


def _never_raises(checker):
    """A student's answer must never produce a traceback: any answer the checker cannot
    handle becomes feedback that says so. (A notebook that sets up an exercise wrongly
    still gets an ExerciseSetupError.)"""
    @functools.wraps(checker)
    def safe(*args, **kwargs):
        try:
            return checker(*args, **kwargs)
        except ExerciseSetupError:
            raise
        except Exception as problem:   # noqa: BLE001 - feedback instead of a traceback
            return _wrong(f"Your answer could not be checked ({type(problem).__name__}: "
                          f"{problem}). Give a plain number, list or matrix as the question asks.")
    return safe


def as_real(answer) -> tuple[float | None, str]:
    """``(value, "")`` for an answer that is a finite real number (int, float, Fraction, numpy
    or sympy number), else ``(None, reason)``."""
    if isinstance(answer, (bool, np.bool_)):
        return None, f"{answer} is a truth value, not a number"
    if isinstance(answer, sympy.Basic):
        if not answer.is_number:
            return None, f"{answer} still contains a symbol; give a number"
        answer = complex(answer) if not answer.is_real else float(answer)
    if isinstance(answer, numbers.Complex) and not isinstance(answer, numbers.Real):
        if answer.imag != 0:
            return None, f"{answer} is a complex number; the answer is real"
        answer = answer.real
    if isinstance(answer, (numbers.Real, Fraction)):
        value = float(answer)
        if math.isnan(value):
            return None, "NaN (not a number) cannot be the answer"
        if math.isinf(value):
            return None, "infinity cannot be the answer"
        return value, ""
    return None, f"it should be a number, got {type(answer).__name__}"


def _is_integer(value) -> bool:
    """True for whole numbers given as ints (numpy ints included), or as sympy integers."""
    return is_int(value) or (isinstance(value, sympy.Integer))


@_never_raises
def check_rank(answer, matrix) -> Feedback:
    """Check a claimed rank of ``matrix`` against the exact rank, explaining a miss."""
    if answer is None:
        return NOT_ANSWERED
    if not _is_integer(answer):
        return _wrong(f"A rank is a whole number of columns; you gave {answer!r} "
                      f"({type(answer).__name__}).")
    exact = linalg.as_exact_matrix(matrix)
    rank = linalg.exact_rank(exact)
    bound = min(exact.shape)
    if answer == rank:
        pivots = ", ".join(linalg.column_name(p) for p in linalg.pivot_columns(exact))
        return _right(f"The independent (pivot) columns are {pivots}, so the rank is {rank}.")
    if not 0 <= answer <= bound:
        return _wrong(f"A {exact.rows}×{exact.cols} matrix has rank between 0 and "
                      f"min({exact.rows}, {exact.cols}) = {bound}; {answer} is impossible.")
    if answer > rank:
        target, combination = next(iter(linalg.dependency_coefficients(exact).items()))
        relation = linalg.format_relation(target, combination)
        return _wrong(f"Too high: you counted a dependent column as independent. "
                      f"For example {relation}.")
    return _wrong(f"Too low: {rank} columns are independent. Check each column against only "
                  f"the columns before it, with any real coefficients (not only integers).")


@_never_raises
def check_column_numbers(answer, expected: list[int], what: str = "pivot columns") -> Feedback:
    """Check a list of column numbers counted from 1 (as the notes write C1, C2, ...).

    ``expected`` holds 0-based indices as the helpers return them.
    """
    if answer is None:
        return NOT_ANSWERED
    if not isinstance(answer, (list, tuple)) or not all(_is_integer(a) for a in answer):
        return _wrong(f"Give the {what} as a list of whole numbers, e.g. [1, 2].")
    wanted = sorted(j + 1 for j in expected)
    given = sorted(answer)
    if given == wanted:
        return _right(f"The {what} are {wanted}.")
    if given == [j - 1 for j in wanted]:
        return _wrong("Count columns from 1 as the notes do (C1 is column 1); "
                      "you seem to have counted from 0.")
    missing = sorted(set(wanted) - set(given))
    extra = sorted(set(given) - set(wanted))
    if not missing and not extra:
        return _wrong(f"Your list names a column more than once; name each of the {what} once.")
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"should not include {extra}")
    return _wrong(f"Your list of {what} is {', and '.join(parts)}.")


@_never_raises
def check_combination(coefficients, matrix, target: int, using: list[int]) -> Feedback:
    """Check coefficients c with  C_target = sum_i c_i C_{using[i]}  (0-based columns).

    The check is by computation: the residual of the claimed relation must be exactly zero;
    otherwise the rows in which it breaks are named.
    """
    if coefficients is None:
        return NOT_ANSWERED
    if not isinstance(coefficients, (list, tuple)) or len(coefficients) != len(using):
        return _wrong(f"Give a list of {len(using)} coefficient(s), one for each of "
                      f"{', '.join(linalg.column_name(j) for j in using)}.")
    for c in coefficients:
        if isinstance(c, sympy.Basic) and c.is_number and c.is_real:
            continue
        value, reason = as_real(c)
        if value is None:
            return _wrong(f"Every coefficient must be a real number: {reason}.")
    combination = dict(zip(using, coefficients))
    residual = linalg.relation_residual(matrix, target, combination)
    relation = linalg.format_relation(target, combination)
    if all(entry == 0 for entry in residual):
        return _right(f"{relation} holds in every row.")
    broken = [i + 1 for i, entry in enumerate(residual) if entry != 0]
    return _wrong(f"{relation} fails in row(s) {broken}: there the two sides differ by "
                  f"{[residual[i - 1] for i in broken]}.")


@_never_raises
def check_matrix(answer, expected, name: str = "matrix", atol: float = 0.0) -> Feedback:
    """Compare a matrix answer with the expected one: shape first, then entries."""
    if answer is None:
        return NOT_ANSWERED
    try:
        given = linalg.as_float_array(answer)
    except (TypeError, ValueError) as problem:
        return _wrong(f"Your {name} is not a usable matrix: {problem}.")
    wanted = linalg.as_float_array(expected)
    if given.shape != wanted.shape:
        return _wrong(f"Your {name} has shape {given.shape[0]}×{given.shape[1]}, "
                      f"but it should be {wanted.shape[0]}×{wanted.shape[1]}.")
    wrong = np.argwhere(np.abs(given - wanted) > atol)
    if len(wrong) == 0:
        return _right(f"Your {name} matches, all {wanted.size} entries.")
    first = ", ".join(f"({i + 1}, {j + 1})" for i, j in wrong[:4])
    return _wrong(f"{len(wrong)} of {wanted.size} entries of your {name} are off, "
                  f"e.g. at (row, column) {first}.")


@_never_raises
def check_number(answer, expected: float, name: str = "answer", rel_tol: float = 1e-9) -> Feedback:
    """Compare a numeric answer with the expected value to a relative tolerance."""
    if answer is None:
        return NOT_ANSWERED
    value, reason = as_real(answer)
    if value is None:
        return _wrong(f"Your {name}: {reason}.")
    if np.isclose(value, float(expected), rtol=rel_tol, atol=0.0):
        shown = f"{expected:,}" if float(expected).is_integer() else f"{expected:,.6g}"
        return _right(f"The {name} is {shown}.")
    direction = "too high" if value > expected else "too low"
    ratio = value / float(expected) if expected else float("inf")
    return _wrong(f"Your {name} {value:,.6g} is {direction} ({ratio:.3g}× the right value).")


@_never_raises
def check_tolerance(tol, matrix, wanted_rank: int) -> Feedback:
    """Check that ``tol`` makes the numerical rank of ``matrix`` equal ``wanted_rank``, and
    say which singular value the tolerance sits on the wrong side of if it does not."""
    if tol is None:
        return NOT_ANSWERED
    value, reason = as_real(tol)
    if value is None or value < 0:
        return _wrong(f"A tolerance is a number >= 0; {reason or f'you gave {tol!r}'}.")
    tol = value
    sigma = linalg.singular_values(matrix)
    got = linalg.numerical_rank(matrix, tol=float(tol))
    if got == wanted_rank:
        return _right(f"With tol = {tol:.0e}, {got} singular values lie above it.")
    if got > wanted_rank:
        return _wrong(f"Too small: σ{got} = {sigma[got - 1]:.1e} is above your tolerance, so "
                      f"noise counts as a direction. Go above it.")
    return _wrong(f"Too large: σ{got + 1} = {sigma[got]:.1e} is a real direction but is below "
                  f"your tolerance. Go below it.")


@_never_raises
def check_one_entry_change(answer, original, wanted_rank: int) -> Feedback:
    """Check a copy of ``original`` in which exactly one entry changed, with the wanted rank."""
    if answer is None:
        return NOT_ANSWERED
    try:
        given = linalg.as_exact_matrix(answer)
    except (TypeError, ValueError) as problem:
        return _wrong(f"Your matrix is not usable: {problem}.")
    start = linalg.as_exact_matrix(original)
    if given.shape != start.shape:
        return _wrong(f"Keep the shape {start.rows}×{start.cols}; yours is "
                      f"{given.rows}×{given.cols}.")
    changed = [(i + 1, j + 1) for i in range(start.rows) for j in range(start.cols)
               if given[i, j] != start[i, j]]
    if len(changed) != 1:
        return _wrong(f"Change exactly one entry; you changed {len(changed)} {changed[:5]}.")
    rank = linalg.exact_rank(given)
    if rank == wanted_rank:
        return _right(f"Changing entry {changed[0]} gives rank {rank}.")
    return _wrong(f"Changing entry {changed[0]} gives rank {rank}, not {wanted_rank}.")


@_never_raises
def check_choice(answer, correct: str, options, explanation: str = "") -> Feedback:
    """Check a multiple-choice answer given as one of the strings in ``options``."""
    if answer is None:
        return NOT_ANSWERED
    options = list(options)
    if correct not in options:
        raise ExerciseSetupError(f"the correct answer {correct!r} is not among the options {options}")
    if answer not in options:
        return _wrong(f"Answer with one of {options}; you gave {answer!r}.")
    if answer == correct:
        return _right(explanation or f"It is {correct!r}.")
    return _wrong(f"{answer!r} is not it. Look again at the numbers above.")
