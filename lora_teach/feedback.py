"""Feedback on a student's answer: right or not, and if not, which usual slip it is.

The judges (``judge_*``) and checkers (``check_*``) here each return a :class:`Feedback`.
Feedback names the usual slips: too few digits, a rounded whole number, a unit slip (bytes, MB,
GB, GiB), a transposed shape, and the slips each exercise names for its own question (a factor of
two means something different in each). It says too high or too low and why, never the ratio to
the right answer, which would give the answer away in one wrong try. :func:`judge_function`
runs a student's function on copies of cases of its own and says which case fails and how, or
that the function changed its inputs. A checker never raises on an answer: whatever the
student types gets a sentence back. A right answer counts in any form that means the same (3,
3.0 or a 0-d tensor; a list, tuple, set or array; see the ``as_*`` readers below). The
exercises of the course, which use these judges and checkers, are in
:mod:`lora_teach.exercises`. (Checking the arguments a helper is called with is another job,
that of :mod:`lora_teach.checks`, which every module uses.)
"""

from __future__ import annotations

import copy
import functools
import inspect
import math
import numbers
from dataclasses import dataclass

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


class ExerciseSetupError(ValueError):
    """A mistake in how a notebook calls a checker (not in the student's answer)."""


def _right(reason: str) -> Feedback:
    return Feedback(True, f"Correct. {reason}")


def _wrong(reason: str) -> Feedback:
    return Feedback(False, f"Not yet. {reason}")


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


# ---------------------------------------------------------------------------
# Reading an answer
# ---------------------------------------------------------------------------

def _plain(answer):
    """A 0-d numpy array or tensor, or a numpy scalar, as the Python value it holds (so that
    ``torch.tensor(3)`` and ``np.float64(3)`` read as 3); anything else unchanged."""
    if getattr(answer, "shape", None) == () and hasattr(answer, "item"):
        return answer.item()
    return answer


def _kind(answer) -> str:
    """What an answer is, for a message: its type, with the shape of an array or tensor."""
    shape = getattr(answer, "shape", None)
    return f"{type(answer).__name__} of shape {tuple(shape)}" if shape is not None else type(answer).__name__


def as_real(answer) -> tuple[float | None, str]:
    """``(value, "")`` for an answer that is a finite real number (int, float, Fraction, numpy
    or sympy number, 0-d array or tensor), else ``(None, reason)``."""
    answer = _plain(answer)
    if isinstance(answer, (bool, np.bool_)):
        return None, f"{answer} is a truth value, not a number"
    if isinstance(answer, str):
        try:
            float(answer.replace(",", "").replace("_", ""))
        except ValueError:
            return None, f"it should be a number, not text ({answer!r})"
        return None, f"{answer!r} is text, not a number: remove the quotes"
    try:
        if isinstance(answer, sympy.Basic):
            if not answer.is_number:
                return None, f"{answer} still contains a symbol; give a number"
            answer = complex(answer) if not answer.is_real else float(answer)
        if isinstance(answer, numbers.Complex) and not isinstance(answer, numbers.Real):
            if answer.imag != 0:
                return None, f"{answer} is a complex number; the answer is real"
            answer = answer.real
        if not isinstance(answer, numbers.Real):
            if getattr(answer, "size", None) == 1 or getattr(answer, "numel", lambda: 0)() == 1:
                return None, (f"it is one number inside a {_kind(answer)}; take the number "
                              f"out with .item()")
            return None, f"it should be a number, got {_kind(answer)}"
        value = float(answer)
    except OverflowError:   # an int or Fraction beyond the largest float, e.g. 10**400
        return None, "it is far too large (beyond 10^308) to be the answer"
    except (TypeError, ValueError):   # a sympy expression that has no numeric value
        return None, f"{answer} cannot be read as a number"
    if math.isnan(value):
        return None, "NaN (not a number) cannot be the answer"
    if math.isinf(value):
        return None, "infinity cannot be the answer"
    return value, ""


def as_whole(answer) -> int | None:
    """``answer`` as an int when it is a whole number however written (3, 3.0, numpy's 3, a 0-d
    tensor holding 3, sympy's 3), else None: a count or a column number may be typed any way."""
    answer = _plain(answer)
    if is_int(answer) or isinstance(answer, sympy.Integer):
        return int(answer)   # exact, however large
    value, _ = as_real(answer)
    return int(value) if value is not None and value.is_integer() else None


def as_list(answer) -> list | None:
    """The entries of a flat list, tuple, set, 1-D numpy array or tensor, or sympy vector;
    None for anything else (a string, a dict, a matrix, a generator)."""
    if isinstance(answer, (list, tuple, set, frozenset)):
        return list(answer)
    if isinstance(answer, sympy.MatrixBase):
        return list(answer) if 1 in answer.shape else None
    if getattr(answer, "ndim", None) == 1 and hasattr(answer, "tolist"):
        return answer.tolist()
    return None


def as_array(value) -> np.ndarray | None:
    """``value`` (numpy array, tensor of any dtype, nested list or number) as a float array;
    None when it does not hold real numbers: text, truth values, complex numbers, dicts,
    generators, ragged lists, ints too large for a float."""
    try:
        if hasattr(value, "detach"):   # a torch tensor (feedback does not need torch itself)
            value = value.detach().cpu()
            value = (value.double() if value.is_floating_point() else value).numpy()
        array = np.asarray(value)
        if array.dtype.kind == "O":    # sympy numbers or Fractions, or something that is no number
            array = array.astype(float)
    except (TypeError, ValueError, RuntimeError, AttributeError, OverflowError):
        return None
    return array.astype(float) if array.dtype.kind in "iuf" else None


def _significant(value: float) -> int:
    """How many significant digits a typed number carries (trailing zeros of an integer
    excluded): 3.16 -> 3, 3.2 -> 2, 4.1e9 -> 2."""
    if value == 0:
        return 1
    text = f"{abs(value):.15g}"
    mantissa = text.split("e")[0].replace(".", "").lstrip("0")
    return max(1, len(mantissa.rstrip("0")))


UNIT_SLIPS = {   # ratio answer / expected -> what the student probably did, by expected unit
    "bytes": {1e-3: "kB", 1e-6: "MB", 1e-9: "GB", 2.0 ** -20: "MiB", 2.0 ** -30: "GiB"},
    "GB": {1e9: "bytes", 1e3: "MB", 1e-3: "TB", 1e9 / 2 ** 30: "GiB"},
    "MB": {1e6: "bytes", 1e-3: "GB", 1e6 / 2 ** 20: "MiB"},
}


@_never_raises
def judge_number(answer, expected: float, name: str, significant: int | None = None,
                 unit: str | None = None, hints: dict | None = None,
                 integer: bool = False) -> Feedback:
    """Compare a numeric answer with ``expected``.

    ``significant``: the precision the question asks for (an integer answer must be exact).
    ``unit``: the unit asked for, so that an answer in another unit is recognised.
    ``hints``: ``{ratio of answer to expected: why an answer there is wrong}``, the slips
    usual for this question, e.g. ``{0.5: "one adapter per layer instead of two"}``. There
    are no default hints: a factor of 2 or 100 means something different in each question.
    The message says too high or too low and why, never the ratio, which would give the
    answer away in one wrong try.
    """
    if answer is None:
        return NOT_ANSWERED
    value, reason = as_real(answer)
    if value is None:
        return _wrong(f"Your {name}: {reason}.")
    shown = f"{expected:,.0f}" if integer else f"{expected:,.{significant or 6}g}"
    if integer or significant is None:
        close = value == expected if integer else math.isclose(value, expected, rel_tol=1e-9)
    else:   # within half a unit of the last digit asked for
        unit_of_last_digit = 10.0 ** (math.floor(math.log10(abs(expected))) - significant + 1)
        close = abs(value - expected) <= 0.5 * unit_of_last_digit * (1 + 1e-9)
    if close:
        return _right(f"The {name} is {shown}{' ' + unit if unit else ''}.")
    direction = "too high" if value > expected else "too low"
    typed = f"{value:,.0f}" if integer and float(value).is_integer() and abs(value) < 1e18 else f"{value:,.6g}"
    digits_needed = len(str(abs(int(expected))).rstrip("0")) if integer else 0
    digits_typed = _significant(value)
    if (integer and 2 <= digits_typed < digits_needed and abs(expected) >= 10_000   # 4.1e9 for 4,109,015,040
            and value == float(f"{expected:.{digits_typed}g}")):
        return _wrong(f"Your {name} {value:,.6g} is close but not exact: it looks rounded. "
                      f"Give the exact whole number, every digit.")
    # a slip typed at the precision asked for still matches: 3 significant digits carry up
    # to half a unit of the third digit of rounding (0.5% at most)
    tolerance = 5 * 10.0 ** -significant if significant else 2e-3
    ratio = value / expected if expected else math.inf
    for factor, slip in (hints or {}).items():
        if math.isclose(factor, 1, rel_tol=tolerance):   # a slip that rounds to the answer
            continue
        if math.isclose(ratio, factor, rel_tol=tolerance):
            return _wrong(f"Your {name} {typed} is {direction}: {slip}.")
    for factor, other in UNIT_SLIPS.get(unit, {}).items():
        if math.isclose(ratio, factor, rel_tol=tolerance):
            return _wrong(f"Your {name} looks like it is in {other}; the question asks for {unit}.")
    if integer and not float(value).is_integer():
        return _wrong(f"The {name} is a whole number; you gave {value:g}.")
    if significant and math.isclose(value, expected, rel_tol=0.05):
        digits = _significant(value)
        if digits < significant:
            return _wrong(f"Close, but the question asks for {significant} significant digits: "
                          f"{value:g} has fewer.")
        return _wrong(f"Close: your {name} {value:,.{significant + 1}g} is within 5% but not "
                      f"right to {significant} significant digits. Check your rounding or "
                      f"an intermediate step.")
    return _wrong(f"Your {name} {typed} is {direction}.")


@_never_raises
def judge_choice(answer, correct: str, options: dict) -> Feedback:
    """A multiple-choice answer; ``options`` maps each option (a string) to the reason it is
    (or is not) the answer, so a wrong choice is told why it is wrong."""
    if answer is None:
        return NOT_ANSWERED
    if correct not in options:
        raise ExerciseSetupError(f"the correct answer {correct!r} is not among the options "
                                 f"{list(options)}")
    if not isinstance(answer, str):   # a list, a set or a dict is no option
        example = next(option for option in options if option != correct)   # not the answer
        return _wrong(f"Answer with one of {list(options)} as a string, e.g. {example!r}; you "
                      f"gave a {type(answer).__name__}.")
    spelled = {option.strip().lower(): option for option in options}
    answer = spelled.get(answer.strip().lower(), answer)   # 'Neither' and ' neither ' mean 'neither'
    if answer not in options:
        return _wrong(f"Answer with one of {list(options)}; you gave {answer!r}.")
    reason = options[answer][:1].upper() + options[answer][1:]
    ending = "" if reason.endswith((".", "?", "!")) else "."
    if answer == correct:
        return _right(reason + ending)
    return _wrong(f"Not {answer!r}. {reason}{ending}")


def judge_function(student, cases, run_reference, compare, name: str) -> Feedback:
    """Run the student's function on each case and compare with the reference.

    ``cases`` is a list of ``(description, arguments)``; ``run_reference(*arguments)`` gives
    the expected result and ``compare(expected, got)`` returns None or what differs. The
    reference runs first, on its own copy of the arguments, and the student's function gets
    another copy: a function that changes its inputs cannot change the expected result, and
    it is told so, since changing the caller's tensors is a bug of its own.
    """
    if student is None:
        return NOT_ANSWERED
    if not callable(student):
        return _wrong(f"Define a function and pass it, e.g. exercises.check(..., {name}); you "
                      f"passed a value of type {type(student).__name__}.")
    for description, arguments in cases:
        expected = run_reference(*copy.deepcopy(arguments))
        given = copy.deepcopy(arguments)
        try:
            got = student(*given)
        except Exception as problem:   # noqa: BLE001 - a bug in the student's code is feedback
            return _wrong(f"On {description}, your function raised {type(problem).__name__}: "
                          f"{problem}")
        changed = [i for i, (before, after) in enumerate(zip(arguments, given)) if not _unchanged(before, after)]
        if changed:
            return _wrong(f"On {description}, your function changed its input{'s' * (len(changed) > 1)} "
                          f"{_argument_names(student, changed)} in place (as x += ..., x[...] = ... or "
                          f"x.zero_() do). Compute a new result and leave the inputs as they were.")
        if got is None:
            return Feedback(False, "Not answered yet: your function returns None; write its "
                                   "body and run the cell.")
        try:
            problem = compare(expected, got)
        except Exception as error:   # noqa: BLE001 - whatever it returned, say so
            problem = (f"your result ({type(got).__name__}) could not be compared with the expected "
                       f"one ({type(error).__name__}: {error})")
        if problem:
            ending = "" if problem.rstrip().endswith((".", "?", "!")) else "."
            return _wrong(f"On {description}: {problem}{ending}")
    return _right(f"Your function agrees with the reference on all {len(cases)} cases.")


def _unchanged(before, after) -> bool:
    """True when ``after`` still equals ``before`` entry by entry (numbers, lists, arrays, tensors)."""
    try:
        if isinstance(before, (list, tuple)):
            return len(after) == len(before) and all(_unchanged(b, a) for b, a in zip(before, after))
        if hasattr(before, "shape"):
            return (tuple(after.shape) == tuple(before.shape)
                    and np.array_equal(as_array(before), as_array(after), equal_nan=True))
        return bool(before == after)
    except Exception:   # noqa: BLE001 - something that cannot even be compared has changed
        return False


def _argument_names(function, positions: list[int]) -> str:
    """The names the student gave the arguments at ``positions`` (or "argument 2" and so on)."""
    try:
        names = [p.name for p in inspect.signature(function).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):   # a builtin without a signature
        names = []
    return ", ".join(names[i] if i < len(names) else f"argument {i + 1}" for i in positions)


def compare_arrays(expected, got, atol: float = 1e-6) -> str | None:
    """None when ``got`` is an array of the expected shape and values, else what differs."""
    expected, returned = as_array(expected), got
    got = as_array(got)
    if got is None:
        return f"you returned a {_kind(returned)}, not an array of numbers"
    if got.shape != expected.shape:
        if got.shape == expected.shape[::-1]:
            return f"your result has shape {got.shape}, the transpose of the expected {expected.shape}"
        return f"your result has shape {got.shape}, expected {expected.shape}"
    if not np.all(np.isfinite(got)):
        return "your result holds NaN or infinity"
    worst = float(np.max(np.abs(got - expected))) if got.size else 0.0
    if worst > atol * max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0):
        return f"the largest difference from the expected values is {worst:.3g}"
    return None


# ---------------------------------------------------------------------------
# Rank and linear independence (notebook 01)
# ---------------------------------------------------------------------------

@_never_raises
def check_rank(answer, matrix) -> Feedback:
    """Check a claimed rank of ``matrix`` against the exact rank, explaining a miss."""
    if answer is None:
        return NOT_ANSWERED
    whole = as_whole(answer)   # 2, 2.0 and torch.tensor(2) are the same rank
    if whole is None:
        return _wrong(f"A rank is a whole number of columns; you gave {answer!r} "
                      f"({_kind(answer)}).")
    answer = whole
    exact = linalg.as_exact_matrix(matrix)
    rank = linalg.exact_rank(exact)
    bound = min(exact.shape)
    if answer == rank:   # which columns are independent is the next exercise's question
        return _right(f"The rank is {rank}: {rank} of the {exact.cols} columns are independent.")
    if not 0 <= answer <= bound:
        return _wrong(f"A {exact.rows}×{exact.cols} matrix has rank between 0 and "
                      f"min({exact.rows}, {exact.cols}) = {bound}; {answer} is impossible.")
    if answer > rank:
        return _wrong("Too high: you counted a dependent column as independent. Check each "
                      "column against only the columns before it: is it a combination of them?")
    return _wrong("Too low: more columns are independent than you counted. Check each column "
                  "against only the columns before it, with any real coefficients (not only "
                  "integers).")


@_never_raises
def check_column_numbers(answer, expected: list[int], what: str = "pivot columns") -> Feedback:
    """Check a list of column numbers counted from 1 (as the notes write C1, C2, ...).

    ``expected`` holds 0-based indices as the helpers return them.
    """
    if answer is None:
        return NOT_ANSWERED
    given = as_list(answer)   # a set, a tuple or an array will do too
    given = None if given is None else [as_whole(a) for a in given]
    if given is None or None in given:
        return _wrong(f"Give the {what} as a list of whole numbers, e.g. [1, 2].")
    wanted = sorted(j + 1 for j in expected)
    given = sorted(given)
    if given == wanted:
        return _right(f"The {what} are {wanted}.")
    if given == [j - 1 for j in wanted]:
        return _wrong("Count columns from 1 as the notes do (C1 is column 1); "
                      "you seem to have counted from 0.")
    missing = sorted(set(wanted) - set(given))
    extra = sorted(set(given) - set(wanted))
    if not missing and not extra:
        return _wrong(f"Your list names a column more than once; name each of the {what} once.")
    parts = []   # which columns, the answer itself, is not said; what kind of slip it is, is
    if extra:
        parts.append("it includes a column that is a combination of the columns before it")
    if missing:
        parts.append("it leaves out a column that is not a combination of the columns before it")
    return _wrong(f"Your list of {what}: {', and '.join(parts)}.")


@_never_raises
def check_combination(coefficients, matrix, target: int, using: list[int]) -> Feedback:
    """Check coefficients c with  C_target = sum_i c_i C_{using[i]}  (0-based columns).

    The check is by computation: the residual of the claimed relation must be exactly zero;
    otherwise the rows in which it breaks are named.
    """
    columns = ", ".join(linalg.column_name(j) for j in using)
    if coefficients is None:
        return NOT_ANSWERED
    if isinstance(coefficients, (set, frozenset)):
        return _wrong(f"A set has no order (and keeps no repeats): give the coefficients as a list, "
                      f"one for each of {columns} in that order.")
    coefficients = [_plain(c) for c in as_list(coefficients) or []]   # an array or tuple will do too
    if len(coefficients) != len(using):
        return _wrong(f"Give a list of {len(using)} coefficient{'s' * (len(using) > 1)}, one for "
                      f"each of {columns}.")
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
    differences = ", ".join(_readable(residual[i - 1]) for i in broken)
    return _wrong(f"{relation} fails in row(s) {broken}: there the two sides differ by "
                  f"{differences}.")


def _readable(number) -> str:
    """An exact difference as a person would write it: 1/3 stays a fraction, but a float typed
    as 0.1 (exactly 3602879701896397/36028797018963968) shows as a decimal, -5.551e-17."""
    rational = sympy.Rational(number)
    if rational.q <= 1000:
        return str(rational)
    return f"{float(rational):.4g}"


@_never_raises
def check_relation_repair(answer, original, target: int, combination: dict) -> Feedback:
    """Check a copy of ``original`` changed in as few entries as possible so that the column
    relation  C_target = sum c_j C_j  holds in every row."""
    if answer is None:
        return NOT_ANSWERED
    start = linalg.as_exact_matrix(original)
    try:
        given = linalg.as_exact_matrix(answer.detach().tolist() if hasattr(answer, "detach") else answer)
    except (TypeError, ValueError) as problem:
        return _wrong(f"Give the repaired matrix as a sympy Matrix, numpy array or list of rows of "
                      f"numbers: {problem}.")
    if given.shape != start.shape:
        return _wrong(f"Keep the shape {start.rows}×{start.cols}; yours is {given.rows}×{given.cols}.")
    relation = linalg.format_relation(target, combination)
    residual = linalg.relation_residual(given, target, combination)
    changed = [(i + 1, j + 1) for i in range(start.rows) for j in range(start.cols)
               if given[i, j] != start[i, j]]
    fewest = sum(1 for entry in linalg.relation_residual(start, target, combination) if entry != 0)
    if any(entry != 0 for entry in residual):
        rows = [i + 1 for i, entry in enumerate(residual) if entry != 0]
        return _wrong(f"{relation} still fails in row(s) {rows}.")
    if len(changed) > fewest:
        return _wrong(f"{relation} now holds, but you changed {len(changed)} entries "
                      f"{changed}; {fewest} are enough (one per row where it failed).")
    before, after = linalg.exact_rank(start), linalg.exact_rank(given)
    effect = (f"the rank drops from {before} to {after}: {linalg.column_name(target)} is no longer "
              f"an independent column" if after < before else
              f"the rank stays {after}: the other columns decide it")
    return _right(f"You changed {changed}, the fewest possible, and {relation} holds in every "
                  f"row; {effect}.")


@_never_raises
def check_tolerance(tol, matrix, wanted_rank: int) -> Feedback:
    """Check that ``tol`` makes the numerical rank of ``matrix`` equal ``wanted_rank`` with room
    to spare, and say which singular value the tolerance sits on the wrong side of if it does
    not. A tolerance a hair below a real singular value works for this matrix only: a little
    more noise and the rank changes. So it must sit at least a factor of two (or, in a narrow
    gap, its middle third on a log scale) inside the gap between σ_r and σ_(r+1)."""
    if tol is None:
        return NOT_ANSWERED
    value, reason = as_real(tol)
    if value is None or value < 0:
        return _wrong(f"A tolerance is a number >= 0; {reason or f'you gave {tol!r}'}.")
    sigma = linalg.singular_values(matrix)
    got = linalg.numerical_rank(matrix, tol=value)
    if got > wanted_rank:
        return _wrong(f"Too small: σ{got} = {sigma[got - 1]:.1e} is above your tolerance, so "
                      f"noise counts as a direction. Go above it.")
    if got < wanted_rank:
        return _wrong(f"Too large: σ{got + 1} = {sigma[got]:.1e} is a real direction but is below "
                      f"your tolerance. Go below it.")
    real, noise = sigma[wanted_rank - 1], sigma[wanted_rank] if wanted_rank < len(sigma) else 0.0
    margin = min(2.0, (real / noise) ** (1 / 3)) if noise > 0 else 2.0
    if value > real / margin:
        return _wrong(f"Only just: your tolerance sits right under σ{wanted_rank} = {real:.3g}, so "
                      f"a little noise would push that real direction below it. Choose a value "
                      f"well inside the gap below σ{wanted_rank}.")
    if value < noise * margin:
        return _wrong(f"Only just: your tolerance sits right above σ{wanted_rank + 1} = "
                      f"{noise:.1e}, so a little more noise would count as a direction. Choose "
                      f"a value well inside the gap above σ{wanted_rank + 1}.")
    return _right(f"With tol = {value:.0e}, {got} singular values lie above it, with room to "
                  f"spare on both sides.")
