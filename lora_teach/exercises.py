"""The exercises of the course, by id, and :func:`check`, which judges an answer to one.

A notebook cell reads ``exercises.check("03.1", my_bytes)``: the checker finds the exercise,
computes the expected answer itself (from the exercise's definition, and from the notebook
objects passed in when the answer depends on a training run), and returns a
:class:`~lora_teach.feedback.Feedback`. Nothing in the student's cell reveals the answer.

Each exercise has a kind: *reasoning* (work something out), *construction* (build an object
with a property) or *coding* (write a function; the checker runs it on cases of its own).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lora_teach import accounting, linalg, lowrank, quantization, subspaces
from lora_teach.feedback import (
    NOT_ANSWERED,
    ExerciseSetupError,
    Feedback,
    as_array,
    as_real,
    as_whole,
    check_column_numbers,
    check_combination,
    check_rank,
    check_relation_repair,
    check_tolerance,
    compare_arrays,
    judge_choice,
    judge_function,
    judge_number,
)


@dataclass(frozen=True)
class Exercise:
    """One exercise: what it asks, what kind it is, and how its answer is judged."""

    question: str
    kind: str          # "reasoning" | "construction" | "coding"
    judge: object      # judge(answer, **context) -> Feedback


EXERCISES: dict[str, Exercise] = {}
KINDS = ("reasoning", "construction", "coding")


def exercise(exercise_id: str, question: str, kind: str):
    """Register the decorated judge under ``exercise_id``."""
    if kind not in KINDS:
        raise ExerciseSetupError(f"unknown exercise kind {kind!r}; choose one of {KINDS}")

    def register(judge):
        EXERCISES[exercise_id] = Exercise(question, kind, judge)
        return judge
    return register


def check(exercise_id: str, answer, **context) -> Feedback:
    """Judge ``answer`` to the exercise ``exercise_id`` (e.g. "03.1"); ``context`` passes the
    notebook objects an exercise about a training run needs. Never raises on an answer."""
    if exercise_id not in EXERCISES:
        raise ExerciseSetupError(f"no exercise {exercise_id!r}; the course has {sorted(EXERCISES)}")
    if answer is None:
        return NOT_ANSWERED
    judge = EXERCISES[exercise_id].judge
    try:   # a missing or misspelt notebook object is the author's mistake, found before judging
        inspect.signature(judge).bind(answer, **context)
    except TypeError as problem:
        raise ExerciseSetupError(f"exercise {exercise_id}: {problem}") from None
    try:
        return judge(answer, **context)
    except ExerciseSetupError:
        raise
    except Exception as problem:   # noqa: BLE001 - an answer never gives a traceback
        return Feedback(False, f"Not yet. Your answer could not be checked "
                               f"({type(problem).__name__}: {problem}).")


def _model_m_500m() -> int:
    return accounting.transformer_parameters(accounting.MODELS["model-m-500m"])["total"]


# ---------------------------------------------------------------------------
# 01: rank and linear independence
# ---------------------------------------------------------------------------

@exercise("01.1", "the rank of P", "reasoning")
def _(answer, P):
    return check_rank(answer, P)


@exercise("01.2", "the pivot columns of P, counted from 1", "reasoning")
def _(answer, P):
    return check_column_numbers(answer, linalg.pivot_columns(P))


@exercise("01.3", "the coefficients that build C4 of P from its pivot columns", "construction")
def _(answer, P):
    return check_combination(answer, P, target=3, using=[0, 2])


# The matrix S of exercise 01.4, as notebook 01 prints it. The answer is judged against this
# copy, not against the notebook's S: a student who writes my_S = S (no copy) and edits my_S
# edits S too, and would otherwise be compared with their own answer.
MISTYPED_S = ((1, 0, 2, 5), (0, 1, 1, 2), (2, 1, 3, 9), (1, 3, 0, 2))


@exercise("01.4", "repair C4 = C1 + 2·C3 in the matrix S with the fewest changed entries",
          "construction")
def _(answer, S):
    verdict = check_relation_repair(answer, MISTYPED_S, target=3, combination={0: 1, 2: 2})
    try:
        edited = linalg.as_exact_matrix(S) != linalg.as_exact_matrix(MISTYPED_S)
    except (TypeError, ValueError):
        edited = True
    if not edited:
        return verdict
    return Feedback(verdict.correct, f"{verdict.message} (Note: the notebook's S has changed too, "
                                     f"probably through my_S = S, which gives S a second name. Run "
                                     f"the cell that defines S again and start from my_S = S.copy().)")


@exercise("01.5", "a tolerance that gives the noisy W numerical rank 2", "construction")
def _(answer, W_noisy):
    return check_tolerance(answer, W_noisy, wanted_rank=2)


# 01.6: a slip is named when it reproduces the student's result on every case that ran.
def _singular_value_count(M, tol, above) -> int:
    return int(np.sum(above(np.linalg.svd(np.asarray(M, dtype=float), compute_uv=False), tol)))


def _eigenvalue_count(M, tol):
    return int(np.sum(np.real(np.linalg.eigvals(M)) > tol)) if M.shape[0] == M.shape[1] else None


_RELATIVE = ("you compared the singular values with tol·σ₁. Here tol is an absolute bound: "
             "compare each σᵢ with tol itself")
_RANK_SLIPS = (   # (what the slip computes, why it is wrong)
    (lambda M, tol: _singular_value_count(M, tol, np.greater_equal),
     "you counted a singular value equal to tol. The numerical rank counts the singular values "
     "strictly above tol (> rather than >=): a direction exactly at the tolerance is noise"),
    (lambda M, tol: _singular_value_count(M, tol * np.linalg.norm(M, 2), np.greater), _RELATIVE),
    (lambda M, tol: _singular_value_count(M, tol * np.linalg.norm(M, 2), np.greater_equal), _RELATIVE),
    (lambda M, tol: int(np.linalg.matrix_rank(M)),
     "your function ignored tol (np.linalg.matrix_rank(M) without tol uses numpy's own tiny "
     "default). Count the singular values above the tol you are given"),
    (_eigenvalue_count,
     "you counted eigenvalues. Those of a matrix that is not symmetric differ from its singular "
     "values (and a matrix that is not square has none): use np.linalg.svd(M, compute_uv=False)"),
    (lambda M, tol: min(M.shape),
     "you returned min(d, k), the largest rank a d×k matrix can have. Count the singular "
     "values above tol"),
)


def _rank_cases():
    noisy = np.array([[1.0, 7, 2, 8, 15], [2, 10, 4, 12, 22], [3, 15, 6, 18, 33], [4, 12, 8, 16, 28]])
    noisy = noisy + 1e-6 * np.random.default_rng(5).standard_normal(noisy.shape)
    return [
        ("[[3, 100, 0], [0, 1, 0], [0, 0, 0.001]] with tol = 0.5",
         (np.array([[3.0, 100.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.001]]), 0.5)),
        ("a noisy 4×5 matrix of rank 2 with tol = 1e-3", (noisy, 1e-3)),
        ("a 2×3 matrix of zeros with tol = 0.5", (np.zeros((2, 3)), 0.5)),
        ("diag(3, 2, 1) with tol = 1 (σ₃ equals tol)", (np.diag([3.0, 2.0, 1.0]), 1.0)),
        ("diag(10, 2, 0.5) with tol = 1", (np.diag([10.0, 2.0, 0.5]), 1.0)),
    ]


@exercise("01.6", "write numerical_rank(M, tol): the number of singular values of M above tol",
          "coding")
def _(answer):
    ran, stop = [], None   # (description, arguments, the student's result) per case that ran
    for description, arguments in _rank_cases():
        results = []
        verdict = judge_function(answer, [(description, arguments)], linalg.numerical_rank,
                                 lambda expected, got, results=results: results.append(got),
                                 "numerical_rank")
        if not verdict.correct:   # it raised, changed its input or returned None
            stop = verdict
            break
        ran.append((description, arguments, results[0]))
    for description, _, got in ran:
        if as_whole(got) is None:
            return Feedback(False, f"Not yet. On {description}, your function returned "
                                   f"{type(got).__name__} {got!r:.60}: return the rank, a whole number.")
    wrong = [(d, a, as_whole(got)) for d, a, got in ran if as_whole(got) != linalg.numerical_rank(*a)]
    if not wrong and stop is not None:
        return stop
    if not wrong:
        return Feedback(True, f"Correct. Your function agrees with the reference on all "
                              f"{len(ran)} cases.")
    description, arguments, got = wrong[0]
    said = (f"Not yet. On {description}, your function returned {got}; the numerical rank is "
            f"{linalg.numerical_rank(*arguments)}.")
    for slip, why in _RANK_SLIPS:
        if all(slip(a.copy(), tol) == as_whole(g) for _, (a, tol), g in ran):
            return Feedback(False, f"{said} It looks as if {why}.")
    return Feedback(False, said)


@exercise("01.7", "predict the rank of A·B for a random integer 7×3 A and 3×5 B", "reasoning")
def _(answer, A, B):
    a, b = linalg.as_exact_matrix(A), linalg.as_exact_matrix(B)
    expected = linalg.exact_rank(a * b)
    d, k = a.rows, b.cols
    slips = dict.fromkeys(range(expected), "random integer matrices almost never have a column "
                          "that is a combination of the others by chance: ask what bounds the "
                          "rank of A·B whatever the entries are, not what could lower it")
    slips[linalg.exact_rank(a) + linalg.exact_rank(b)] = (
        "ranks do not add in a product; A·B is a product, not a sum")
    slips[max(d, k)] = (f"a {d}×{k} matrix has at most min({d}, {k}) independent columns, so "
                        f"its rank can never reach max({d}, {k})")
    slips[min(d, k)] = (f"min({d}, {k}) bounds every {d}×{k} matrix, but A·B is more special: "
                        f"each of its columns is A times a column of B, a combination of the "
                        f"columns of A")
    hints = {value / expected: why for value, why in slips.items() if value != expected} if expected else {}
    return judge_number(answer, expected, "prediction", integer=True, hints=hints)

# ---------------------------------------------------------------------------
# 02: low-rank decomposition
# ---------------------------------------------------------------------------

def _slips(expected: float, slips) -> dict:
    """Slips given as ``{wrong value: why}`` or ``[(wrong value, why), ...]``, as judge_number's
    ``{ratio to expected: why}``. Two slips that give the same value share one message, so
    neither hides the other; a slip that lands on the answer is no slip here."""
    hints: dict = {}
    for value, why in (slips.items() if isinstance(slips, dict) else slips):
        if math.isclose(value, expected, rel_tol=1e-9):
            continue
        ratio = value / expected
        same = next((r for r in hints if math.isclose(r, ratio, rel_tol=1e-9)), None)
        if same is None:
            hints[ratio] = why
        else:
            hints[same] = f"{hints[same]}; or {why}"
    return hints


@exercise("02.1", "numbers stored by a rank-16 factorisation of a 1024 x 4096 matrix", "reasoning")
def _(answer):
    d, k, r = 1024, 4096, 16
    expected = lowrank.factorized_parameters(d, k, r)
    return judge_number(answer, expected, "count", integer=True, hints=_slips(expected, {
        r * d: "you counted only B (d × r), not A (r × k)",
        r * k: "you counted only A (r × k), not B (d × r)",
        d * k: "that is the dense matrix, d × k, which the factorisation replaces",
        d + k: "that is d + k, the size of one column of B and one row of A; B and A "
               "have r of each",
        r * d * k: "you multiplied r, d and k; B and A are two separate matrices, so add "
                   "their sizes d·r and r·k",
        r * r * (d + k): "you multiplied by r twice: B has d·r entries and A has r·k"}))


@exercise("02.2", "the break-even rank of a 768 x 3072 matrix, to 3 significant digits",
          "reasoning")
def _(answer):
    d, k = 768, 3072
    expected = lowrank.break_even_rank(d, k)
    return judge_number(answer, expected, "break-even rank", significant=3, hints=_slips(expected, {
        d / 2: "d/2 is the rule for a square matrix (d = k); this one is not square: solve "
               "r(d + k) = dk",
        k / 2: "k/2 is not it (nor is √(dk), which is the same number here); solve r(d + k) = dk",
        min(d, k): "that is the largest rank a 768 × 3072 matrix can have, not the rank where "
                   "r(d + k) reaches dk",
        2 * d * k / (d + k): "that solves r(d + k)/2 = dk; a rank-r factorisation stores "
                             "r(d + k) numbers, all of B and all of A",
        (d + k) / 2: "that is the average of d and k; solve r(d + k) = dk for r"}))


@exercise("02.3", "the rank that keeps 90% of the centred photo's energy", "reasoning")
def _(answer, singular_values, raw_singular_values=None):
    sigma = np.sort(np.abs(np.asarray(singular_values, dtype=float)))[::-1]
    expected = lowrank.rank_for_energy(sigma, 0.90)
    shares = np.cumsum(sigma) / np.sum(sigma)
    slips = [(lowrank.rank_for_energy(sigma, 0.80), "that is the rank for 80% of the energy, "
                                                    "printed above; the question asks for 90%"),
             (lowrank.rank_for_energy(sigma, 0.99), "that is the rank for 99% of the energy; "
                                                    "the question asks for 90%"),
             (int(np.argmax(shares >= 0.90)) + 1, "you added up σᵢ; the energy is the sum of "
                                                  "the squares σᵢ², so accumulate sigma ** 2"),
             (expected - 1, "if you used np.argmax on the cumulative shares, it gives a "
                            "position counted from 0, while a rank counts directions from 1")]
    if raw_singular_values is not None:
        raw = np.sort(np.abs(np.asarray(raw_singular_values, dtype=float)))[::-1]
        slips.append((lowrank.rank_for_energy(raw, 0.90), "that is the raw photo's rank; use "
                      "the centred photo's singular values, sigma_centred"))
    slips = [(value, why) for value, why in slips if value >= 1]
    return judge_number(answer, expected, "rank", integer=True, hints=_slips(expected, slips))


def _svd_cases():
    generator = np.random.default_rng(7)
    rank_3 = generator.standard_normal((5, 3)) @ generator.standard_normal((3, 5))
    return [("a random 6 × 4 matrix with r = 2", (generator.standard_normal((6, 4)), 2)),
            ("a 5 × 5 matrix of rank 3 with r = 3", (rank_3, 3)),
            ("a wide 3 × 7 matrix with r = 1", (generator.standard_normal((3, 7)), 1))]


def _truncated_svd_reference(M, r):
    """What 02.4 compares with: the rank-r product and the factors' shapes it asks for."""
    U, sigma, Vt = np.linalg.svd(M, full_matrices=False)
    return {"product": (U[:, :r] * sigma[:r]) @ Vt[:r], "r": r,
            "no sigma": U[:, :r] @ Vt[:r], "V not V^T": (U[:, :r] * sigma[:r]) @ Vt.T[:r],
            "last r": (U[:, -r:] * sigma[-r:]) @ Vt[-r:]}


def _columns(n: int) -> str:
    return f"{n} column{'s' * (n != 1)}"


def _compare_factors(expected, got) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return ("return two matrices, (B, A), the factors whose product B @ A is the rank-r "
                "approximation")
    B, A = (as_array(m) for m in got)
    if B is None or A is None:
        return (f"B and A must be matrices of numbers; you returned ({type(got[0]).__name__}, "
                f"{type(got[1]).__name__})")
    d, k = expected["product"].shape
    r = expected["r"]
    if B.ndim != 2 or A.ndim != 2:
        return f"B and A must be 2-D matrices; yours have shapes {B.shape} and {A.shape}"
    if B.shape == (r, k) and A.shape == (d, r):
        return f"you returned (A, B): A is {r} × {k} and B is {d} × {r}; return (B, A)"
    if B.shape != (d, r):
        kind = (" (the whole d × k product, not a factor)" if B.shape == (d, k) else
                " (a d × d matrix, not a factor of rank r)" if B.shape == (d, d) else "")
        has = f"has {B.shape[1]}" if B.shape[0] == d else f"is {B.shape[0]} × {B.shape[1]}"
        return (f"B should be {d} × r with r = {_columns(r)}; yours {has}{kind}. B keeps the "
                f"first r columns of U (scaled by σ₁ … σ_r)")
    if A.shape != (r, k):
        kind = (" (the whole d × k product, not a factor)" if A.shape == (d, k) else
                " (a k × k matrix, not a factor of rank r)" if A.shape == (k, k) else "")
        has = f"has {A.shape[0]}" if A.shape[1] == k else f"is {A.shape[0]} × {A.shape[1]}"
        return (f"A should be r × {k} with r = {r} row{'s' * (r != 1)}; yours {has}{kind}. A "
                f"keeps the first r rows of Vᵀ")
    product = B @ A
    if compare_arrays(expected["product"], product, atol=1e-8) is None:
        return None
    if compare_arrays(expected["no sigma"], product, atol=1e-8) is None:
        return "B @ A equals U_r V_rᵀ: the singular values Σ_r are missing from B or A"
    if compare_arrays(expected["V not V^T"], product, atol=1e-8) is None:
        return ("A holds the first r columns of Vᵀ; np.linalg.svd returns Vᵀ already, so A is "
                "its first r rows, Vt[:r]")
    if r < min(d, k) and compare_arrays(expected["last r"], product, atol=1e-8) is None:
        return ("B @ A keeps the r smallest singular values: np.linalg.svd sorts them from the "
                "largest, so the first r (U[:, :r], Vt[:r]) are the ones to keep")
    return compare_arrays(expected["product"], product, atol=1e-8)


@exercise("02.4", "write truncated_svd(M, r) returning B (d × r) and A (r × k)", "coding")
def _(answer):
    return judge_function(answer, _svd_cases(), _truncated_svd_reference,
                          _compare_factors, "my_truncated_svd")


@exercise("02.5", "the Frobenius error of the best rank-1 approximation of Q, to 3 significant "
          "digits", "reasoning")
def _(answer, Q):
    sigma = linalg.singular_values(Q)
    expected = lowrank.eckart_young_error(sigma, 1)
    return judge_number(answer, expected, "error", significant=3, hints=_slips(expected, {
        float(sigma[1]): "that is σ₂ alone, the error in the spectral norm; the Frobenius error "
                         "adds the squares of every discarded singular value, then takes the root",
        float(np.sum(sigma[1:] ** 2)): "that is the sum of squares; take its square root",
        float(np.sum(sigma[1:])): "you added the discarded singular values; add their squares, "
                                  "then take the root",
        float(sigma[0]): "σ₁ is the part the rank-1 approximation keeps; the error is what it "
                         "drops",
        float(np.sqrt(np.sum(sigma ** 2))): "that is ‖Q‖_F, the size of all of Q; the error "
                                            "counts only the discarded singular values",
        expected / float(np.sqrt(np.sum(sigma ** 2))): "that is the relative error (divided by "
                                                       "‖Q‖_F); the question asks for the error "
                                                       "itself"}))


def _smallest_rank_within(sigma: np.ndarray, relative_error: float) -> int:
    """The smallest r whose best rank-r approximation has at most this relative Frobenius error."""
    total = float(np.sqrt(np.sum(sigma ** 2)))
    return next(r for r in range(len(sigma) + 1)
                if lowrank.eckart_young_error(sigma, r) <= relative_error * total * (1 + 1e-12))


@exercise("02.6", "predict the smallest rank r whose best B A approximates the update to a "
          "relative error of at most 10%", "reasoning")
def _(answer, update):
    sigma = linalg.singular_values(update)
    expected = _smallest_rank_within(sigma, 0.10)
    tenth = 0.1 * sigma[0] * (1 + 1e-9)
    spectral = ("σ_{r+1} ≤ σ₁/10 makes the spectral-norm error a tenth; the Frobenius error "
                "adds the squares of every discarded σᵢ")
    shares = np.cumsum(sigma) / np.sum(sigma)
    slips = [(lowrank.rank_for_energy(sigma, 0.90), "that keeps 90% of the energy, which leaves "
              "a relative error of √0.10 ≈ 32%: the relative error is the square root of the "
              "share of the energy left out"),
             (int(np.argmax(sigma <= tenth)), spectral),            # sigma[r] is σ_{r+1}
             (int(np.argmax(sigma <= tenth)) + 1, spectral),        # σ_r ≤ σ₁/10
             (int(np.argmax(shares >= 0.90)) + 1, "you added up σᵢ; the Frobenius error adds "
              "the squares σᵢ², then takes the root"),
             (expected - 1, "if you used np.argmax, it gives a position counted from 0, while a "
              "rank counts directions from 1")]
    return judge_number(answer, expected, "rank", integer=True,
                        hints=_slips(expected, [(v, why) for v, why in slips if v >= 1]))


# ---------------------------------------------------------------------------
# 03: Model M and full fine-tuning
# ---------------------------------------------------------------------------

@exercise("03.1", "bytes of Adam's state for full fine-tuning of the 500M Model M", "reasoning")
def _(answer):
    n = _model_m_500m()
    expected = 2 * 4 * n   # two moments per parameter, 4 bytes each
    return judge_number(answer, expected, "optimizer state", unit="bytes", integer=True,
                        hints={n / expected: "that is one number per parameter, and a count of "
                               "numbers, not of bytes: Adam keeps two 32-bit numbers (4 bytes "
                               "each) per parameter",
                               2 * n / expected: "that counts Adam's two numbers per parameter, "
                               "but numbers are not bytes: a 32-bit number takes 4 bytes",
                               4 * n / expected: "that is one 4-byte number per parameter; Adam "
                               "keeps two (a running mean of the gradient and of its square)",
                               12 * n / expected: "that adds the gradients (4 bytes per "
                               "parameter); the question asks for the optimizer's state only",
                               16 * n / expected: "that is weights, gradients and both moments "
                               "(16 bytes per parameter); the question asks for the optimizer's "
                               "state only",
                               64 * n / expected: "that counts bits (2 numbers x 32 bits); a "
                               "byte is 8 bits",
                               8 * 500_000_000 / expected: "that uses 500 million parameters; "
                               "the model has exactly m500"})


@exercise("03.2", "entity F1 from the displayed precision and recall, to 3 decimals",
          "reasoning")
def _(answer, precision, recall):
    exact = 2 * precision * recall / (precision + recall)
    shown_p, shown_r = round(precision, 3), round(recall, 3)   # as the notebook prints them
    from_shown = 2 * shown_p * shown_r / (shown_p + shown_r)
    if judge_number(answer, exact, "F1", significant=3).correct:
        return judge_number(answer, exact, "F1", significant=3)
    return judge_number(answer, from_shown, "F1", significant=3,
                        hints={((shown_p + shown_r) / 2) / from_shown: "that is the arithmetic "
                               "mean of P and R; F1 is their harmonic mean, 2PR / (P + R)"})


def _memory_cases():
    # the first case trains few of many parameters, so that each usual slip gives its own number
    return [("Model M with a frozen encoder (455 of 124,071 trained, 4-byte numbers)", (124_071, 455, 4)),
            ("Model M, full fine-tuning (124,071 of 124,071 trained, 4-byte numbers)",
             (124_071, 124_071, 4)),
            ("the 500M Model M in 16-bit numbers (2 bytes each), LoRA-sized (983,040 trained)",
             (_model_m_500m(), 983_040, 2)),
            ("nothing trained (1,000 parameters, 4-byte numbers)", (1000, 0, 4))]


def _reference_memory(n_total, n_trainable, bytes_per_number):
    return bytes_per_number * (n_total + n_trainable + 2 * n_trainable)


_MEMORY_SLIPS = (   # (what a usual slip returns for n_total, n_trainable, bytes_per_number; why)
    (lambda n, t, b: b * (n + 2 * t),
     "you count two numbers per trainable parameter besides its weight; training keeps three "
     "(its gradient and Adam's two moments): is the gradient or one moment missing?"),
    (lambda n, t, b: b * 3 * t,
     "the weights are missing: every parameter's weight stays in memory, trained or frozen"),
    (lambda n, t, b: b * 4 * t,
     "only the trainable parameters' weights are counted; the frozen ones stay in memory too "
     "(the forward pass reads them)"),
    (lambda n, t, b: b * (n + 4 * t),
     "the trainable parameters' weights are counted twice: n_total already includes them"),
    (lambda n, t, b: b * (3 * n + t),
     "Adam's moments are counted for every parameter; it keeps them for the trainable ones only"),
    (lambda n, t, b: b * (2 * n + 2 * t),
     "gradients are counted for every parameter; a frozen parameter gets none"),
    (lambda n, t, b: b * 4 * n,
     "gradients and moments are counted for every parameter; a frozen parameter has neither"),
    (lambda n, t, b: 4 * (n + 3 * t),
     "every number takes 4 bytes in your function; use bytes_per_number"),
    (lambda n, t, b: n + 3 * t,
     "that counts numbers, not bytes: multiply by bytes_per_number"),
)
_MEMORY_UNITS = {1e-3: "kB", 1e-6: "MB", 1e-9: "GB", 2.0 ** -20: "MiB", 2.0 ** -30: "GiB", 8.0: "bits"}


def _compare_bytes(expected, got) -> str | None:
    (n_total, n_trainable, bytes_per_number), expected = expected
    value, reason = as_real(got)   # 4.0e6, np.int64 and a 0-d tensor are numbers of bytes too
    if value is None:
        return f"return a number of bytes: {reason}"
    if value == expected:
        return None
    for slip, why in _MEMORY_SLIPS:
        if value == slip(n_total, n_trainable, bytes_per_number):
            return why
    for factor, unit in _MEMORY_UNITS.items():
        if math.isclose(value, factor * expected, rel_tol=1e-6):
            return f"your function returns {unit}; return the number of bytes"
    return (f"your function returns {value:,.0f} bytes, {'more' if value > expected else 'less'} "
            f"than the {expected:,} expected: weights for every parameter, a gradient and two "
            f"moments for each trainable one, bytes_per_number bytes each")


@exercise("03.3", "write training_memory(n_total, n_trainable, bytes_per_number)", "coding")
def _(answer):
    return judge_function(answer, _memory_cases(), lambda *a: (a, _reference_memory(*a)),
                          _compare_bytes, "my_training_memory")


@exercise("03.4", "gigabytes of training memory saved by freezing the 500M encoder (32-bit "
          "Adam), to 3 significant digits", "reasoning")
def _(answer):
    n = _model_m_500m()
    saved = 12 * n / 1e9   # per frozen parameter: no gradient (4 bytes), no moments (8 bytes)
    return judge_number(answer, saved, "memory saved", significant=3, unit="GB",
                        hints={16 * n / 1e9 / saved: "the frozen weights stay in memory: the "
                               "forward pass needs them, so only 12 of the 16 bytes go",
                               8 * n / 1e9 / saved: "the gradient (4 bytes per parameter) goes "
                               "too, not only Adam's two moments",
                               4 * n / 1e9 / saved: "Adam's two moments (8 bytes) go as well as "
                               "the gradient",
                               12 * 500_000_000 / 1e9 / saved: "that uses 500 million "
                               "parameters; the model has exactly m500"})


@exercise("03.5", "gigabytes of 16-bit model files for 25 fully fine-tuned 500M tasks, to 3 "
          "significant digits", "reasoning")
def _(answer):
    n = _model_m_500m()
    expected = 25 * 2 * n / 1e9
    return judge_number(answer, expected, "storage", significant=3, unit="GB",
                        hints={2.0: "that is 32-bit numbers (4 bytes); 16-bit is 2",
                               1 / 25: "that is one task's file; each of the 25 tasks needs its own",
                               2 / 25: "that is one task's file in 32-bit numbers; the question "
                               "asks for 25 tasks, each stored in 16 bits",
                               26 / 25: "that adds a copy of the base; each fully fine-tuned "
                               "model is a whole model by itself, so 25 files are all",
                               8.0: "that counts bits (16 per parameter); a byte is 8 bits",
                               25 * 2 * 500_000_000 / 1e9 / expected: "that uses 500 million "
                               "parameters; the model has exactly m500"})


def _model_m_layer_and_ner_head() -> tuple[int, int]:
    """Parameters of one encoder layer of Model M and of its NER head (weights and biases)."""
    from lora_teach.labels import TAGS
    from lora_teach.model import ModelConfig
    shape = ModelConfig(vocab_size=1)   # Model M's widths (the vocabulary does not enter)
    d, ffn = shape.d_model, shape.d_ffn
    layer = 4 * (d * d + d) + (d * ffn + ffn) + (ffn * d + d) + 2 * 2 * d   # + two LayerNorms
    return layer, d * len(TAGS) + len(TAGS)


@exercise("03.6", "predict the bytes of AdamW's state when only Model M's last encoder layer "
          "and the NER head train", "reasoning")
def _(answer):
    layer, head = _model_m_layer_and_ner_head()
    expected = 8 * (layer + head)   # two 4-byte moments per trained parameter
    n_layer_norms, fpb_head = 2 * 2 * 64, 64 * 3 + 3
    return judge_number(answer, expected, "prediction", unit="bytes", integer=True,
                        hints={1 / 8: "that is the number of trained parameters; AdamW keeps two "
                               "4-byte numbers for each",
                               1 / 4: "that counts AdamW's two numbers per trained parameter, but "
                               "numbers are not bytes: each takes 4",
                               1 / 2: "that is one 4-byte number per trained parameter; AdamW "
                               "keeps two moments",
                               3 / 2: "that adds the gradients; the optimizer's state is the two "
                               "moments only",
                               2.0: "that is weights, gradients and moments (16 bytes per "
                               "parameter); the optimizer's state is the two moments only",
                               (2 * layer + head) / (layer + head): "that trains both encoder "
                               "layers; only the last one trains",
                               layer / (layer + head): "the NER head trains too",
                               (layer + head + fpb_head) / (layer + head): "only the NER head trains: the FPB "
                               "head gets no gradient from the NER loss",
                               head / (layer + head): "that is the head alone; the last encoder "
                               "layer trains too",
                               (layer - n_layer_norms + head) / (layer + head): "the layer's two "
                               "LayerNorms train too (2 x 2 x 64 parameters)"})


# ---------------------------------------------------------------------------
# 04: adapters
# ---------------------------------------------------------------------------

@exercise("04.1", "trainable adapter parameters for BERT-base with m = 32, two per layer",
          "reasoning")
def _(answer):
    shape = accounting.MODELS["bert-base"]
    expected = accounting.adapter_parameters(shape, bottleneck=32)
    weights_only = shape.n_layers * 2 * 2 * 32 * shape.d_model
    with_norms = accounting.adapter_parameters(shape, bottleneck=32, include_layer_norms=True)
    return judge_number(answer, expected, "count", integer=True,
                        hints={0.5: "one adapter per layer; Houlsby et al. put two in each",
                               1 / (2 * shape.n_layers): "that is one adapter; BERT-base has 12 "
                               "layers with two adapters each",
                               1 / shape.n_layers: "that is one layer's two adapters; BERT-base "
                               "has 12 layers",
                               shape.n_layers * 2 * (32 * shape.d_model + 32) / expected:
                               "that counts the down projection only; each adapter has an up "
                               "projection (d × m and d biases) too",
                               shape.n_layers * 2 * (32 * shape.d_model + shape.d_model) / expected:
                               "that counts the up projection only; each adapter has a down "
                               "projection (m × d and m biases) too",
                               weights_only / expected: "you left out the biases (m and d per "
                               "adapter)",
                               with_norms / expected: "that counts the LayerNorms too; the "
                               "question asks for the adapters only",
                               accounting.adapter_parameters(shape, bottleneck=64) / expected:
                               "that is the count for m = 64 (notebook 02's table); this "
                               "question has m = 32"})


@exercise("04.2", "extra linear layers a prediction waits for, with adapters in the 24-layer "
          "BERT-large", "reasoning")
def _(answer):
    return judge_number(answer, 2 * 2 * 24, "number of layers", integer=True,
                        hints={0.5: "each adapter has two projections (down and up), and each "
                               "layer has two adapters: count both",
                               0.25: "that is one per layer; each layer gets two adapters, and "
                               "each adapter has two linear layers (down and up)",
                               1.5: "the GELU between the projections is no linear layer (it has "
                               "no weights): count the down and the up projection only"})


def _adapter_cases():
    # the first case is square (m = d) so that a transposed or swapped weight still runs and
    # its slip can be named; the other two are bottlenecks (m < d)
    generator = torch.Generator().manual_seed(3)
    cases = []
    for d, m, n in ((6, 6, 3), (8, 2, 3), (16, 4, 5)):
        x = torch.randn(n, d, generator=generator)
        weights = (torch.randn(m, d, generator=generator), torch.randn(m, generator=generator),
                   torch.randn(d, m, generator=generator), torch.randn(d, generator=generator))
        cases.append((f"x of shape ({n}, {d}) with m = {m}", (x, *weights)))
    return cases


def _reference_adapter(x, down_weight, down_bias, up_weight, up_bias):
    return x + F.linear(F.gelu(F.linear(x, down_weight, down_bias)), up_weight, up_bias)


_ADAPTER_SLIPS = (   # (what a usual slip returns for x, Wd, bd, Wu, bu; why)
    (lambda x, wd, bd, wu, bu: F.linear(F.gelu(F.linear(x, wd, bd)), wu, bu),
     "the skip connection is missing: an adapter returns x plus the bottleneck's output"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wd, bd), approximate="tanh"), wu, bu),
     "GELU's tanh approximation: use the exact GELU, F.gelu(x)"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.relu(F.linear(x, wd, bd)), wu, bu),
     "that is ReLU; the adapter's nonlinearity is the GELU, F.gelu(x)"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.linear(x, wd, bd), wu, bu),
     "the nonlinearity is missing: put F.gelu between the down and the up projection"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wu, bu)), wd, bd),
     "the projections are swapped: down (down_weight, down_bias) comes first, then the GELU, "
     "then up"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wu, bd)), wd, bu),
     "the projections' weights are swapped: down_weight (m x d) projects down first"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd + bd) @ wu + bu,
     "the weights are used untransposed: a linear layer computes x @ weight.T + bias"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd + bd) @ wu.T + bu,
     "down_weight is used untransposed: a linear layer computes x @ weight.T + bias"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd.T + bd) @ wu + bu,
     "up_weight is used untransposed: a linear layer computes x @ weight.T + bias"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wd)), wu, bu),
     "down_bias is missing: the down projection adds it before the GELU"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wd, bd)), wu),
     "up_bias is missing: the up projection adds it"),
    (lambda x, wd, bd, wu, bu: F.gelu(x + F.linear(F.linear(x, wd, bd), wu, bu)),
     "the GELU is applied after the skip connection; it belongs between the two projections"),
)


def _compare_adapter(expected, got) -> str | None:
    arguments, expected = expected
    problem = compare_arrays(expected, got, atol=1e-5)
    if problem is None or "largest difference" not in problem:
        return problem
    for slip, why in _ADAPTER_SLIPS:
        try:
            slipped = slip(*arguments)
        except RuntimeError:   # a transposed weight only fits when m = d
            continue
        if compare_arrays(slipped, got, atol=1e-5) is None:
            return why
    return problem


@exercise("04.3", "write adapter(x, down_weight, down_bias, up_weight, up_bias)", "coding")
def _(answer):
    return judge_function(answer, _adapter_cases(), lambda *a: (a, _reference_adapter(*a)),
                          _compare_adapter, "my_adapter")


def _adapter_size(d: int, m: int) -> int:
    return 2 * m * d + d + m


@exercise("04.4", "the largest bottleneck m whose adapter has at most 1% of the parameters of "
          "a 768 x 768 matrix", "construction")
def _(answer):
    d, budget = 768, 0.01 * 768 * 768
    best = max(m for m in range(1, d + 1) if _adapter_size(d, m) <= budget)
    hints = {int(budget / d) / best: "an adapter has two matrices, down (m × d) and up (d × m), "
                                     "plus d + m biases: 2md + d + m"}
    verdict = judge_number(answer, best, "bottleneck", integer=True, hints=hints)
    m = as_whole(answer)
    if verdict.correct or m is None or not 1 <= m <= d or "2md" in verdict.message:
        return verdict
    size = _adapter_size(d, m)   # the student's m, priced: why it is over or under, not by how much
    if m > best:
        return Feedback(False, f"Not yet. m = {m} is too high: its adapter has {size:,} parameters, "
                               f"more than 1% of the matrix ({budget:,.0f}).")
    return Feedback(False, f"Not yet. m = {m} is too low: its adapter has {size:,} parameters, and "
                           f"a larger m still fits in 1% of the matrix ({budget:,.0f}).")


@exercise("04.5", "predict the parameters of Houlsby adapters with m = 8 in Model M", "reasoning")
def _(answer):
    d, layers, m = 64, 2, 8   # Model M: d = 64, two encoder layers; two adapters per layer
    one = _adapter_size(d, m)
    expected = layers * 2 * one
    layer_norms, ner_head = layers * 2 * 2 * d, d * 7 + 7
    return judge_number(answer, expected, "prediction", integer=True,
                        hints={0.5: "Houlsby et al. put two adapters in each layer (after the "
                               "attention and after the feed-forward block)",
                               0.25: "that is one adapter; Model M has two layers with two "
                               "adapters each",
                               layers * 2 * 2 * m * d / expected: "you left out the biases "
                               "(m and d per adapter)",
                               (expected + layer_norms) / expected: "that counts the layers' "
                               "LayerNorms, which train too; the question asks for the adapters only",
                               (expected + layer_norms + ner_head) / expected: "that counts the "
                               "LayerNorms and the NER head, which train too; the question asks "
                               "for the adapters only",
                               layers * 2 * _adapter_size(128, m) / expected: "d is the width of "
                               "Model M's vectors, 64; 128 is the feed-forward block's inner size"})

# ---------------------------------------------------------------------------
# 05: LoRA
# ---------------------------------------------------------------------------

def _hints(expected, slips: list) -> dict:
    """``{ratio to expected: why}`` for ``[(a slip's value, why), ...]``, leaving out a slip that
    happens to equal the answer and joining two slips that give the same value."""
    hints = {}
    for value, why in slips:
        if value and not math.isclose(value, expected, rel_tol=1e-9):
            ratio = value / expected
            hints[ratio] = f"{hints[ratio]}; or {why}" if ratio in hints else why
    return hints


@exercise("05.1", "LoRA's trainable parameters for Llama-2-7B, r = 12 on W_q and W_v",
          "reasoning")
def _(answer):
    llama = accounting.MODELS["llama2-7b"]
    layers, d, r = llama.n_layers, llama.d_model, 12
    expected = accounting.lora_parameters(llama, r=r)
    check_all = "count r = 12, both targets (W_q and W_v) and both factors, B (d × r) and A (r × k)"
    # one target, and B or A alone give the same number (d = k): one hint names both
    slips = [
        (layers * 2 * 8 * 2 * d, "that is the count at r = 8 (notebook 02's table); this question "
                                 "has r = 12"),
        (layers * 2 * 16 * 2 * d, "that is the count at r = 16; this question has r = 12"),
        (layers * 1 * r * 2 * d, f"this is the count for W_q alone, or for B or A alone: {check_all}"),
        (layers * 4 * r * 2 * d, "that counts all four attention matrices (W_q, W_k, W_v, W_o); the question "
                                 "adapts W_q and W_v only"),
        (layers * 2 * d * d, "that is the size of the frozen d × d matrices W_q and W_v themselves; LoRA trains "
                             "only B (d × r) and A (r × k) beside each"),
        (layers * 2 * (d * d + r * 2 * d), "the frozen d × d matrices are not trained: count only B (d × r) and "
                                           "A (r × k) beside each"),
        (layers * 2 * r * d * d, "r × d × k multiplies the sizes; B (d × r) and A (r × k) hold d·r + r·k "
                                 "numbers together"),
        (2 * r * 2 * d, "that is one layer; Llama-2-7B has 32, each with its own B and A"),
        (r * 2 * d, "that is one adapted matrix of one layer; count both targets in all 32 layers"),
    ]
    return judge_number(answer, expected, "count", integer=True, hints=_hints(expected, slips))


@exercise("05.2", "which matrix gets a gradient at the first step if A and B both start at 0",
          "reasoning")
def _(answer):
    return judge_choice(answer, "neither", {
        "A": "write out ∂L/∂A for h = W₀x + BAx: which matrix does it contain as a factor, "
             "and what is that matrix at the start?",
        "B": "write out ∂L/∂B for h = W₀x + BAx: it contains the factor Ax; what is Ax at the "
             "start?",
        "both": "write out ∂L/∂A and ∂L/∂B for h = W₀x + BAx and look at the factor each one "
                "contains at the start",
        "neither": "each gradient contains the other matrix: both stay at zero forever, which "
                   "is why A starts random"})


@exercise("05.3", "how many singular directions of the trained update (α/r) B A of the first "
          "W_q hold 90% of its energy", "reasoning")
def _(answer, update):
    sigma = linalg.singular_values(np.asarray(update, dtype=float))
    expected = lowrank.rank_for_energy(sigma, 0.90)
    rank = int(np.sum(sigma > 1e-4 * sigma[0]))
    slips = [
        (rank, f"{rank} is the rank of the update (at most r = 8); the question asks how few of its "
               "directions carry 90% of Σσᵢ²"),
        (lowrank.rank_for_energy(np.sqrt(sigma), 0.90),
         "that share is of Σσᵢ; the energy is Σσᵢ², the sum of the squares"),
        (expected - 1, "the first k directions must reach at least 90% together; if you took an index "
                       "from np.argmax, it counts from 0"),
        (expected + 1, "you went one direction past the first k whose share reaches 90% (a share of "
                       "exactly 0.90 is enough)"),
    ]
    return judge_number(answer, expected, "number of directions", integer=True,
                        hints=_hints(expected, slips))


def _lora_cases():
    """Three cases; the first is square (d = k), so that a transposed update has the right shape
    and can be named rather than make the function raise."""
    generator = torch.Generator().manual_seed(5)
    cases = []
    for d, k, r, alpha in ((6, 6, 2, 4.0), (5, 8, 1, 8.0), (3, 7, 3, 1.5)):
        cases.append((f"W0 of shape ({d}, {k}) with r = {r}, alpha = {alpha:g}",
                      (torch.randn(4, k, generator=generator), torch.randn(d, k, generator=generator),
                       torch.randn(d, generator=generator), torch.randn(r, k, generator=generator),
                       torch.randn(d, r, generator=generator), alpha)))
    return cases


@dataclass(frozen=True)
class _LoRAExpected:
    """The right (output, merged weight) of one case, and what each usual slip returns on it."""

    forward: torch.Tensor
    merged: torch.Tensor
    forward_slips: tuple    # ((what a slip's output is, why), ...)
    merged_slips: tuple     # ((what a slip's merged weight is, why), ...)


_NO_SCALING = "the update is not scaled: LoRA multiplies B A by α/r (r = the number of rows of A)"
_ALPHA = "the update is scaled by α; LoRA scales it by α/r (r = the number of rows of A)"
_WRONG_R = "your r is the number of columns of A; r is its number of rows (A is r × k)"


def _reference_lora(x, W0, b, A, B, alpha):
    r, k = A.shape
    scaling = alpha / r
    frozen = F.linear(x, W0, b)

    def output(s, bias=True, transposed=False):
        update = x @ (B @ A) if transposed else F.linear(F.linear(x, A), B)
        return (frozen if bias else F.linear(x, W0)) + s * update

    forward_slips = [(output(scaling, bias=False),
                      "the bias b is missing: the output is x W0ᵀ + b + (α/r) x Aᵀ Bᵀ")]
    merged_slips = [(scaling * B @ A, "that is the update alone; the merged weight is W0 plus "
                                      "(α/r) B A"),
                    (W0.clone(), "that is W0 unchanged; merging adds the update (α/r) B A to it, "
                                 "so that one matrix does the work of both paths")]
    for wrong, why in ((1.0, _NO_SCALING), (alpha, _ALPHA), (alpha / k, _WRONG_R)):
        if wrong != scaling:   # at r = 1, say, α is α/r: no slip there
            forward_slips.append((output(wrong), why))
            merged_slips.append((W0 + wrong * B @ A, why))
    if W0.shape[0] == k:   # square: the transposed update has W0's shape
        forward_slips.append((output(scaling, transposed=True),
                              "the update is applied as x (B A); with inputs in the rows of x it "
                              "is x (B A)ᵀ = x Aᵀ Bᵀ, as the frozen part is x W0ᵀ"))
        merged_slips.append((W0 + scaling * (B @ A).T,
                             "you added (B A)ᵀ = Aᵀ Bᵀ; the merged weight adds B A (d × r times "
                             "r × k), which has W0's shape d × k"))
    return _LoRAExpected(frozen + scaling * F.linear(F.linear(x, A), B), W0 + scaling * B @ A,
                         tuple(forward_slips), tuple(merged_slips))


def _as_pair(got):
    """The two things a function returned, or None: a tuple or a list of two (or a numpy array
    of two objects) will do."""
    if isinstance(got, (tuple, list)) or (isinstance(got, np.ndarray) and got.dtype == object
                                           and got.ndim == 1):
        return tuple(got) if len(got) == 2 else None
    return None


def _same(expected, got) -> bool:
    return compare_arrays(expected, got, atol=1e-5) is None


def _compare_lora(expected: _LoRAExpected, got) -> str | None:
    pair = _as_pair(got)
    if pair is None:
        if isinstance(got, (tuple, list)):
            return (f"you returned {len(got)} thing{'s' * (len(got) != 1)}; return two, the "
                    f"layer's output and the merged weight, e.g. (output, merged)")
        if _same(expected.forward, got):
            return "you returned the output only; return it with the merged weight: (output, merged)"
        return (f"you returned one {type(got).__name__}; return two things, the layer's output "
                f"and the merged weight: (output, merged)")
    output, merged = pair
    if _same(expected.forward, merged) and _same(expected.merged, output):
        return "you returned the merged weight first; return (output, merged) in that order"
    merged_slip = next((why for value, why in expected.merged_slips if _same(value, merged)), None)
    if _same(expected.forward, output):
        if merged_slip:
            return f"the output is right, but the merged weight is wrong: {merged_slip}"
        problem = compare_arrays(expected.merged, merged, atol=1e-5)
        return f"the output is right, but the merged weight is wrong: {problem}" if problem else None
    output_slip = next((why for value, why in expected.forward_slips if _same(value, output)), None)
    if output_slip and output_slip == merged_slip:
        return f"the output and the merged weight are both wrong: {output_slip}"
    if output_slip:
        return f"the output is wrong: {output_slip}"
    return f"the output is wrong: {compare_arrays(expected.forward, output, atol=1e-5)}"


@exercise("05.4", "write lora(x, W0, b, A, B, alpha) returning the output and the merged "
          "weight", "coding")
def _(answer):
    return judge_function(answer, _lora_cases(), _reference_lora, _compare_lora, "my_lora")


@exercise("05.5", "predict by what factor raising alpha from 8 to 12 multiplies the first step's change "
          "of the update (α/r) B A under plain SGD, to 3 significant digits", "reasoning")
def _(answer):
    expected = (12 / 8) ** 2
    slips = [
        (1.5, "B's first step does grow with α (its gradient carries α/r), but the quantity asked is the "
              "change of (α/r)·B·A: count how many times α enters it"),
        (1.0, "under plain SGD a step is the learning rate times the gradient, not divided by the "
              "gradient's size as in Adam, so B's step grows as its gradient does with α"),
        (1.5 ** 3, "A gets no gradient at the first step (B = 0), so A does not change: only B's step "
                   "and the α/r in front of B A grow with α"),
        (2.0, "α goes from 8 to 12 here, not from 8 to 16"),
        (4.0, "that would be the factor for doubling α; here α goes from 8 to 12"),
        ((8 / 12) ** 2, "that is the factor from α = 12 back to α = 8"),
        (8 / 12, "that is a factor from α = 12 back to α = 8, and the change of (α/r)·B·A holds α "
                 "more than once"),
    ]
    return judge_number(answer, expected, "factor", significant=3, hints=_hints(expected, slips))


# --- Notebook 06: LoRA on a real pretrained model ------------------------------------------

MINILM = {"layers": 6, "d": 384, "ffn": 1536}   # all-MiniLM-L6-v2's shape (notebook 06 reads it)


def _lora_all_linear_minilm(r: int) -> int:
    d, ffn = MINILM["d"], MINILM["ffn"]
    per_layer = 4 * r * (d + d) + r * (d + ffn) + r * (ffn + d)
    return MINILM["layers"] * per_layer


def _lora_feed_forward_minilm(r: int) -> int:
    return MINILM["layers"] * 2 * r * (MINILM["d"] + MINILM["ffn"])


@exercise("06.1", "LoRA's trainable parameters with r = 8 on the two feed-forward layers "
          "(intermediate.dense, output.dense) of MiniLM's 6 encoder layers", "reasoning")
def _(answer):
    layers, d, r = MINILM["layers"], MINILM["d"], 8
    expected = _lora_feed_forward_minilm(r)
    return judge_number(answer, expected, "count", integer=True, hints={
        _lora_all_linear_minilm(r) / expected: "that is LoRA on every linear layer (section 2 "
                                               "counted it); the question asks for the two "
                                               "feed-forward layers only",
        layers * 4 * r * 2 * d / expected: "that counts the four attention matrices; the "
                                           "feed-forward layers are intermediate.dense and "
                                           "output.dense",
        layers * 2 * r * 2 * d / expected: "the feed-forward matrices are 1536 x 384 and "
                                           "384 x 1536, not 384 x 384",
        0.5: "each of the two feed-forward layers trains B (d_out x r) and A (r x d_in): "
             "count both factors of both layers",
        1 / layers: "that is one encoder layer; MiniLM has 6"})


@exercise("06.2", "bytes of AdamW's state for LoRA with r = 16 on query and value of MiniLM "
          "(32-bit numbers, head left out)", "reasoning")
def _(answer):
    trainable = MINILM["layers"] * 2 * 16 * 2 * MINILM["d"]
    head = MINILM["d"] * 3 + 3    # the sentiment head of notebook 06: 384 x 3 weights, 3 biases
    return judge_number(answer, 2 * 4 * trainable, "optimizer state", unit="bytes", integer=True, hints={
        0.5: "either one moment instead of two (AdamW keeps running means of the gradient and "
             "of its square, 4 bytes each), or r = 8 instead of this question's r = 16",
        0.25: "each 32-bit number takes 4 bytes, and AdamW keeps two per trained parameter",
        0.125: "that is the number of trained parameters; AdamW keeps two 4-byte numbers for each",
        1.5: "that adds the gradients (4 bytes more per parameter); the question asks for "
             "AdamW's state only",
        (trainable + head) / trainable: "leave the head out, as the question says",
        (trainable // 2 + head) / trainable: "that is section 8's measured state for r = 8 with "
                                             "the head; here r = 16 and the head is left out"})


IGNORE = -100   # the label a token gets when the loss should skip it (PyTorch's default)


def _alignment_cases():
    # splits as MiniLM's tokenizer makes them (notebook 06 prints the first)
    return [("the words ['Ericsson', 'shares', 'rose'] split as [CLS] eric ##sson shares rose [SEP]",
             ([None, 0, 0, 1, 2, None], ["B-ORG", "O", "O"])),
            ("one word split in three: [CLS] he ##ine ##ken [SEP] ('Heineken')",
             ([None, 0, 0, 0, None], ["B-ORG"])),
            ("a sentence pair's two [SEP] tokens and padding",
             ([None, 0, 1, 1, None, 2, None, None, None], ["B-PER", "I-PER", "O"]))]


def _reference_alignment(word_ids, word_labels):
    labels, previous = [], None
    for word in word_ids:
        labels.append(IGNORE if word is None or word == previous else word_labels[word])
        previous = word
    return labels


def _label(value):
    """A label as the reference writes it: a string, or a whole number such as -100 (also when
    it is a numpy int, a 0-d tensor or -100.0)."""
    whole = None if isinstance(value, str) else as_whole(value)
    return value if whole is None else whole


def _compare_alignment(expected, got) -> str | None:
    if isinstance(got, (str, dict)) or not isinstance(got, Iterable):
        return f"return a list with one label per token ({len(expected)} here)"
    got = [_label(g) for g in got]
    if len(got) != len(expected):
        return f"return one label per token ({len(expected)} here)"
    wrong = [i for i, (e, g) in enumerate(zip(expected, got)) if not isinstance(g, (str, int)) or e != g]
    if not wrong:
        return None
    i = wrong[0]
    return (f"token {i} should get {expected[i]!r}, yours is {got[i]!r} (special tokens and every "
            f"sub-token after a word's first get {IGNORE})")


@exercise("06.3", "write align_labels(word_ids, word_labels): one label per WordPiece token, "
          "the word's label on its first sub-token, -100 elsewhere", "coding")
def _(answer):
    return judge_function(answer, _alignment_cases(), _reference_alignment, _compare_alignment,
                          "align_labels")


@exercise("06.4", "predict the trainable count PEFT reports for LoraConfig(r=4, lora_alpha=32, "
          "target_modules=['query', 'key', 'value']) on MiniLM's encoder", "reasoning")
def _(answer):
    layers, d, r = MINILM["layers"], MINILM["d"], 4
    expected = layers * 3 * r * (d + d)
    head = d * 3 + 3
    return judge_number(answer, expected, "prediction", integer=True, hints={
        2.0: "that is r = 8; this configuration has r = 4",
        2 / 3: "that counts query and value; key is a third target",
        4 / 3: "that is section 7's count (r = 8 on query and value); here r = 4 on three targets",
        8.0: "alpha sets the scale alpha/r of the update; it adds no parameters",
        0.5: "each adapted matrix trains B (384 x r) and A (r x 384): count both",
        1 / layers: "that is one encoder layer; MiniLM has 6",
        (expected + head) / expected: "the head is not part of the PEFT model here: PEFT wraps "
                                      "the encoder only"})


# --- Notebook 07: why a low rank is enough ---------------------------------------------------

# 07.1 (predict, then measure): two random subspaces of MiniLM's query input space R^384, as
# the A of an untrained rank-4 and an untrained rank-16 adapter would span. Section 3 prints
# measured random baselines only; the rule max(i, j)/n is stated after the measurement.
_RANDOM_PHI = {"n": 384, "i": 4, "j": 16}


@exercise("07.1", "predict the average phi(4, 16) between a random 4-dimensional and a random "
          "16-dimensional subspace of R^384, to two significant digits", "reasoning")
def _(answer):
    n, i, j = _RANDOM_PHI["n"], _RANDOM_PHI["i"], _RANDOM_PHI["j"]
    expected = max(i, j) / n
    return judge_number(answer, expected, "prediction of φ(4, 16)", significant=2, hints={
        i * j / n / expected: "that is the average ||U_4^T V_16||_F^2 itself (φ divides it by "
                              "min(i, j)), or the chance level of section 3's larger, "
                              "64-direction subspaces (here the larger one has 16 directions)",
        1 / n / expected: "that is the average overlap <u, v>^2 of one direction of each "
                          "subspace; ||U_4^T V_16||_F^2 sums it over every pair of directions",
        min(i, j) / n / expected: "that treats both subspaces as 4-dimensional; the overlap grows "
                                  "with the dimension of the larger one too",
        i / j / expected: "that leaves out the size of the space (or takes Model M's 64): the "
                          "query's inputs live in R^384, and in more room random subspaces "
                          "overlap less",
        100.0: "φ is a share between 0 and 1, not a percentage",
        1 / expected: "φ = 1 only when one subspace lies inside the other; two random "
                      "subspaces of R^384 share far less"})


# 07.2: section 4's budget spent on all six linear layers of each of Model M's two layers
_MODEL_M_LINEAR = [(64, 64)] * 4 + [(128, 64), (64, 128)]   # W_q, W_k, W_v, W_o; ffn_in, ffn_out


def _budget_count(budget_per_layer: int, shapes, layers: int = 2) -> int:
    """LoRA parameters trained at the largest whole rank whose r (d_out + d_in) over ``shapes``
    fits ``budget_per_layer``, in ``layers`` layers."""
    per_rank = sum(d_out + d_in for d_out, d_in in shapes)
    return layers * (budget_per_layer // per_rank) * per_rank


@exercise("07.2", "LoRA parameters trained in Model M's two layers by all six linear layers at "
          "the largest rank that fits 2,048 LoRA parameters per layer", "reasoning")
def _(answer):
    value = as_whole(answer) if answer is not None and not isinstance(answer, bool) else None
    if value is not None and 1 <= value <= 64:
        return Feedback(False, f"Not yet. Your count {value} looks like a rank: the question asks "
                               f"how many LoRA parameters that rank trains in both layers.")
    expected = _budget_count(2048, _MODEL_M_LINEAR)
    per_rank = sum(d_out + d_in for d_out, d_in in _MODEL_M_LINEAR)
    return judge_number(answer, expected, "count", integer=True, hints={
        4096 / expected: "4,096 is the whole budget; at a whole rank, all six matrices do not "
                         "spend it exactly: find the largest whole r that fits, then count what "
                         "it trains",
        expected / 2 / expected: "that is one layer's count; the question asks for both of "
                                 "Model M's layers",
        _budget_count(2048, [(64, 64)] * 6) / expected: "the feed-forward matrices are 128 × 64 "
                                                        "and 64 × 128: each costs r (128 + 64) "
                                                        "parameters, not r (64 + 64)",
        (2048 // per_rank + 1) * per_rank * 2 / expected: "that rank costs more than 2,048 "
                                                          "parameters per layer: it does not fit",
        _budget_count(4096, _MODEL_M_LINEAR) / expected: "that spends 4,096 on each layer; the "
                                                         "budget is 2,048 per layer (4,096 in "
                                                         "both)"})


def _phi_cases():
    generator = np.random.default_rng(7)
    cases = []
    for n, a, b in ((10, 3, 5), (6, 2, 2), (20, 4, 1)):
        u = np.linalg.qr(generator.standard_normal((n, a)))[0]
        v = np.linalg.qr(generator.standard_normal((n, b)))[0]
        cases.append((f"U with {a} and V with {b} orthonormal columns in R^{n}", (u, v)))
    u = np.linalg.qr(generator.standard_normal((8, 3)))[0]
    cases.append(("V = U (phi is 1 everywhere)", (u, u.copy())))
    return cases


def _reference_phi(u, v):
    """phi, and what the usual slips return instead (each with the reason it is wrong)."""
    products = u.T @ v
    overlap = products ** 2
    i = np.arange(1, u.shape[1] + 1)[:, None]
    j = np.arange(1, v.shape[1] + 1)[None, :]
    both = overlap.cumsum(0).cumsum(1)
    one_axis = ("you summed along one axis only: φ(i, j) sums over the first i directions of U "
                "and the first j of V (cumulative sums along both axes)")
    slips = [
        (overlap, "you return each pair's own <u_i, v_j>^2; φ(i, j) sums these over the first i "
                  "directions of U and the first j of V (cumulative sums along both axes)"),
        (overlap.cumsum(0) / np.minimum(i, j), one_axis), (overlap.cumsum(1) / np.minimum(i, j), one_axis),
        (overlap.cumsum(0), one_axis), (overlap.cumsum(1), one_axis),
        (both, "you return ||U_i^T V_j||_F^2 itself: φ divides it by min(i, j)"),
        (both / np.maximum(i, j), "you divide by max(i, j): φ divides by min(i, j), the most "
                                  "||U_i^T V_j||_F^2 can be"),
        (both / (i * j), "you divide by i·j: φ divides by min(i, j), the most ||U_i^T V_j||_F^2 "
                         "can be"),
        (products.cumsum(0).cumsum(1) / np.minimum(i, j), "square the entries of U^T V before "
                                                           "summing: φ sums squared overlaps"),
        (np.sqrt(both) / np.minimum(i, j), "you divide the Frobenius norm ||U_i^T V_j||_F by "
                                           "min(i, j); φ uses its square"),
    ]
    return subspaces.subspace_similarity(u, v), slips


def _compare_phi(expected, got) -> str | None:
    phi, slips = expected
    problem = compare_arrays(phi, got, atol=1e-9)
    values = as_array(got)
    if problem and values is not None and values.shape == phi.shape and np.all(np.isfinite(values)):
        for slip, reason in slips:
            if np.allclose(values, slip, atol=1e-9):
                return reason
    return problem


@exercise("07.3", "write phi(U, V), the matrix of phi(i, j) = ||U_i^T V_j||_F^2 / min(i, j)",
          "coding")
def _(answer):
    return judge_function(answer, _phi_cases(), _reference_phi, _compare_phi, "phi")


# --- Notebook 08: beyond LoRA -----------------------------------------------------------------

def _nf4_bits(double_quant: bool = True) -> float:
    return 4 + (8 / 64 + 32 / (64 * 256) if double_quant else 32 / 64)


@exercise("08.1", "GB (10^9 bytes) of a 13B model's weights in NF4 with double quantisation, "
          "3 significant digits", "reasoning")
def _(answer):
    expected = 13e9 * _nf4_bits() / 8 / 1e9
    return judge_number(answer, expected, "size", significant=3, unit="GB", hints={
        13e9 * 4 / 8 / 1e9 / expected: "that counts the 4-bit codes only; each block of 64 also "
                                       "stores its constant (8 bits, plus 32 bits per 256 blocks)",
        _nf4_bits(False) / _nf4_bits(): "that is without double quantisation (32-bit constants)",
        16 / _nf4_bits(): "that is the 16-bit size",
        8 / 1: "bits, not bytes: divide by 8"})


@exercise("08.2", "VeRA's trainable parameters with r = 256 on query and value of MiniLM's 6 "
          "layers (head left out)", "reasoning")
def _(answer):
    layers, d, r = MINILM["layers"], MINILM["d"], 256
    expected = layers * 2 * (r + d)
    return judge_number(answer, expected, "count", integer=True, hints={
        layers * 2 * r * 2 * d / expected: "that is LoRA's count at r = 256; VeRA's A and B are "
                                           "frozen and shared, each layer trains r + d_out numbers",
        layers * 2 * (r + d + r * d + d * r) / expected: "the shared A and B are frozen: leave them out",
        0.5: "there are two adapted matrices per layer (query and value)",
        layers * 2 * d / expected: "each layer trains lambda_d (length r) as well as lambda_b"})


def _block_cases():
    generator = torch.Generator().manual_seed(3)
    levels = torch.linspace(-1, 1, 16)
    outlier = torch.tensor([0.1, -0.2, 5.0, 0.05, 0.3, -0.1, 0.2, 0.1])
    return [("10 weights in blocks of 4 (the last block holds 2)",
             (torch.randn(10, generator=generator), levels, 4)),
            ("64 weights in blocks of 16", (torch.randn(64, generator=generator), levels, 16)),
            ("an outlier (5.0) in the first of two blocks of 4", (outlier, levels, 4)),
            ("a block of zeros, then a block of normal values",
             (torch.cat([torch.zeros(4), torch.randn(4, generator=generator)]), levels, 4))]


def _restore(codes, absmax, levels, block_size):
    """Each weight as its level times its block's absmax (what the codes stand for)."""
    scale = torch.as_tensor(absmax, dtype=torch.float32).reshape(-1).repeat_interleave(block_size)
    return levels[torch.as_tensor(codes, dtype=torch.long)] * scale[:len(codes)]


def _reference_blocks(weights, levels, block_size):
    """The restored weights and the absmax per block, then what two usual slips give: one
    absmax for the whole tensor, and levels matched without dividing by the block's absmax."""
    codes, absmax = quantization.quantize_blockwise(weights, levels, block_size)
    n = len(weights)
    whole = weights.abs().max()
    one_scale = levels[_nearest(weights, whole, levels)] * whole
    padded = torch.cat([weights, weights.new_zeros(-n % block_size)]).reshape(-1, block_size)
    unscaled = levels[_nearest(padded.reshape(-1), torch.ones(()), levels)][:n] * \
        absmax.repeat_interleave(block_size)[:n]
    signed = padded.amax(dim=1)
    return (_restore(codes, absmax, levels, block_size), absmax, block_size, one_scale, unscaled,
            signed, levels)


def _nearest(block, absmax, levels):
    scaled = block / absmax if absmax > 0 else block
    return (scaled[:, None] - levels[None, :]).abs().argmin(dim=1)


def _compare_blocks(expected, got) -> str | None:
    restored, absmax, block_size, one_scale, unscaled, signed, levels = expected
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return two things: the codes (one per weight) and the absmax of each block"
    codes, their_absmax = (as_array(part) for part in got)
    if codes is None or their_absmax is None:
        return "the codes and the absmaxes must be tensors (or arrays) of numbers"
    their_absmax, codes = their_absmax.reshape(-1), codes.reshape(-1)
    n, blocks = len(restored), len(absmax)
    if len(their_absmax) == 1 and blocks > 1:
        return (f"you return one absmax for the whole tensor; each block of {block_size} weights "
                f"gets its own ({blocks} here), so that one outlier spoils only its block")
    if len(their_absmax) == n // block_size < blocks:
        return (f"you return {len(their_absmax)} absmaxes for {blocks} blocks: the last block is "
                f"shorter than {block_size} weights; quantise it too, with its own absmax")
    if len(their_absmax) != blocks:
        return f"return one absmax per block of {block_size} weights: {blocks} here, not {len(their_absmax)}"
    if compare_arrays(absmax, their_absmax) is not None:
        if compare_arrays(signed, their_absmax) is None:
            return ("your absmax is each block's largest value; absmax is the largest absolute "
                    "value, so that a negative outlier is covered too")
        return f"the absmaxes are wrong: {compare_arrays(absmax, their_absmax)}"
    if len(codes) == n // block_size * block_size < n:
        return "the codes of the last, shorter block are missing: return one code per weight"
    if len(codes) != n or not np.isin(codes, np.arange(len(levels))).all():
        return (f"codes must hold one whole index 0-{len(levels) - 1} per weight ({n} here); "
                f"yours have {len(codes)} entries" + ("" if np.isin(codes, np.arange(len(levels))).all()
                                                      else ", not all of them level indices"))
    theirs = _restore(codes, absmax, levels, block_size)
    if compare_arrays(restored, theirs, atol=1e-6) is None:
        return None
    if compare_arrays(one_scale, levels[torch.as_tensor(codes, dtype=torch.long)] * float(absmax.max()),
                      atol=1e-6) is None:
        return ("your codes are the levels nearest to weight / the whole tensor's absmax; divide each "
                "block by its own absmax")
    if compare_arrays(unscaled, theirs, atol=1e-6) is None:
        return ("your codes are the levels nearest to the weights themselves; divide each block by "
                "its absmax first, so that its values lie in [-1, 1] like the levels")
    return compare_arrays(restored, theirs, atol=1e-6)


@exercise("08.3", "write quantise_blocks(weights, levels, block_size) returning (codes, one absmax "
          "per block)", "coding")
def _(answer):
    return judge_function(answer, _block_cases(), _reference_blocks, _compare_blocks,
                          "quantise_blocks")


def _nf4_gaps() -> tuple[float, float]:
    """The widest gap between neighbouring NF4 levels, and the widest on the positive side."""
    # imported here, not at the top (a line the other notebooks' blocks share): only 08.4 needs it
    from lora_teach import quantization
    levels = quantization.nf4_levels().double()
    return float(levels.diff().max()), float(levels[levels >= 0].diff().max())


@exercise("08.4", "predict the largest absolute error NF4 rounding can make on a weight, in percent "
          "of its block's absmax, to 3 significant digits", "reasoning")
def _(answer):
    widest_gap, widest_positive_gap = _nf4_gaps()
    expected = 100 * widest_gap / 2   # a weight is at most half a gap from its nearest level
    return judge_number(answer, expected, "prediction", significant=3, unit="%", hints={
        0.01: "that is a fraction of absmax; the question asks for percent",
        (100 / 15) / expected: "that holds for 16 evenly spaced levels; NF4's gaps grow towards "
                             "-1 and 1, and the widest gap decides",
        (100 / 16) / expected: "that holds for evenly spaced levels; NF4's gaps grow towards "
                             "-1 and 1, and the widest gap decides",
        2.0: "a weight is rounded to the nearest level, so it is at most half a gap away from it",
        100 * widest_positive_gap / 2 / expected: "that is half the widest gap on the positive side; "
                                            "the negative side has one level fewer, and its "
                                            "outermost gap is wider",
        100 * widest_positive_gap / expected: "that is the widest gap on the positive side, and a "
                                        "weight is at most half a gap from its level; look at "
                                        "the negative side too"})


# ---------------------------------------------------------------------------
# 09: LoRA on a generative language model
# ---------------------------------------------------------------------------

SMOLLM2 = {"layers": 30, "d": 576, "kv": 192, "ffn": 1536}   # 3 key/value heads of 64 dimensions: 192


def _smollm2_projections() -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of the seven linear layers of one SmolLM2-135M layer."""
    d, kv, ffn = SMOLLM2["d"], SMOLLM2["kv"], SMOLLM2["ffn"]
    return {"q_proj": (d, d), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (d, d),
            "gate_proj": (d, ffn), "up_proj": (d, ffn), "down_proj": (ffn, d)}


@exercise("09.1", "LoRA's trainable parameters with r = 8 on all seven linear layers of every "
          "SmolLM2-135M layer", "reasoning")
def _(answer):
    layers, d, r = SMOLLM2["layers"], SMOLLM2["d"], 8
    shapes = _smollm2_projections()
    per_layer = sum(r * (d_in + d_out) for d_in, d_out in shapes.values())
    expected = layers * per_layer
    attention = sum(r * (d_in + d_out) for name, (d_in, d_out) in shapes.items() if name[0] in "qkvo")
    slips = [
        (layers * 7 * r * 2 * d, "the layers are not all 576 x 576: k_proj and v_proj have 192 outputs "
                                 "(3 key/value heads of 64), and the feed-forward layers are 1,536 wide"),
        (layers * sum(r * (d_in + d_out) for name, (d_in, d_out) in shapes.items() if name in ("q_proj", "v_proj")),
         "that is r = 8 on q_proj and v_proj only (section 1); the question adapts all seven"),
        (layers * (per_layer - 2 * r * (d + SMOLLM2["kv"])) + layers * 2 * r * 2 * d,
         "k_proj and v_proj have 192 outputs (3 key/value heads of 64), not 576"),
        (layers * attention, "that is the four attention projections only; add gate_proj, up_proj and down_proj"),
        (per_layer, "that is one layer; the model has 30, each with its own A and B"),
        (layers * sum(d_in * d_out for d_in, d_out in shapes.values()),
         "that is the size of the frozen weights themselves; LoRA trains r x (d_in + d_out) per layer"),
        (layers * sum(r * d_in * d_out for d_in, d_out in shapes.values()),
         "r x d_in x d_out multiplies the sizes; A (r x d_in) and B (d_out x r) hold r (d_in + d_out) "
         "numbers together"),
        (expected / 2, "count both factors, A (r x d_in) and B (d_out x r)"),
    ]
    return judge_number(answer, expected, "count", integer=True, hints=_hints(expected, slips))


def _mask_cases():
    # (input_ids, prompt_lengths, lengths): right-padded rows, padding id 2 as SmolLM2's, which is
    # also its end-of-turn token: row 2's answer ends with a 2 that is text, followed by padding
    ids = torch.tensor([[5, 6, 7, 8, 9, 2], [11, 12, 13, 14, 2, 2], [21, 22, 23, 24, 25, 26]])
    return [("one row without padding", (ids[2:].clone(), torch.tensor([3]), torch.tensor([6]))),
            ("three rows, two of them padded with id 2 (row 2's answer ends with <|im_end|>, also id 2)",
             (ids.clone(), torch.tensor([2, 3, 1]), torch.tensor([5, 5, 6]))),
            ("a row whose answer is one token", (ids[:1].clone(), torch.tensor([4]), torch.tensor([5])))]


def _reference_labels(input_ids, prompt_lengths, lengths):
    """The labels, and what the usual slips give: {why: labels} for padding labelled, prompt
    labelled, the answer starting one position early or late, and labels shifted by one."""
    positions = torch.arange(input_ids.shape[1])[None, :]
    starts, ends = prompt_lengths[:, None], lengths[:, None]
    padding = positions >= ends

    def masked(before_answer):
        return input_ids.masked_fill(before_answer | padding, -100)

    labels = masked(positions < starts)
    shifted = torch.full_like(labels, -100)
    shifted[:, :-1] = labels[:, 1:]
    return labels, {
        "the padding positions still have labels: padding is not text to learn (here it would teach "
        "the model to keep writing <|im_end|>); give them -100 as well":
            input_ids.masked_fill(positions < starts, -100),
        "the prompt's tokens still have labels: the model would learn to write the question; give every "
        "position before the answer -100":
            input_ids.masked_fill(padding, -100),
        "your answer starts one position early, with the prompt's last token: the first answer token "
        "is at position prompt_length (counting from 0)":
            masked(positions < starts - 1),
        "your answer starts one position late, so its first token is never trained: it is at "
        "position prompt_length (counting from 0)":
            masked(positions < starts + 1),
        "you shifted the labels by one; keep each label at its own token's position (the loss "
        "shifts them: the logits at t are compared with the label at t + 1)":
            shifted,
        "you found the padding by its id, but SmolLM2 pads with <|im_end|>, the answer's own last "
        "token, so that token lost its label and the model would never learn to stop; find the "
        "padding from lengths instead":
            input_ids.masked_fill((positions < starts) | (input_ids == 2), -100),
    }


def _compare_labels(expected, got) -> str | None:
    labels, slips = expected
    got = as_array(got)
    if got is None:
        return "return a tensor of labels, one per input position"
    if got.shape != tuple(labels.shape):
        return f"return labels of the inputs' shape {tuple(labels.shape)}, not {got.shape}"
    if compare_arrays(labels, got, atol=0) is None:
        return None
    for why, slip in slips.items():
        if compare_arrays(slip, got, atol=0) is None:
            return why
    return compare_arrays(labels, got, atol=0)


@exercise("09.2", "write answer_labels(input_ids, prompt_lengths, lengths): the labels of a "
          "right-padded batch, -100 on prompts and padding", "coding")
def _(answer):
    return judge_function(answer, _mask_cases(), _reference_labels, _compare_labels, "answer_labels")


def _kv_cache_bytes(tokens: int, heads: int) -> int:
    return SMOLLM2["layers"] * 2 * heads * 64 * tokens * 4


@exercise("09.3", "predict the size of SmolLM2-135M's key/value cache for 512 tokens in float32, "
          "in MB (10^6 bytes), to 3 significant digits", "reasoning")
def _(answer):
    tokens = 512
    expected = _kv_cache_bytes(tokens, heads=3) / 1e6
    slips = [
        (_kv_cache_bytes(tokens, heads=9) / 1e6, "that counts 9 key/value heads; SmolLM2's 9 query heads "
                                                 "share 3 key/value heads (grouped-query attention)"),
        (_kv_cache_bytes(tokens, heads=3) / 2e6, "the cache holds keys and values: two tensors per layer"),
        (_kv_cache_bytes(tokens, heads=3) / 30e6, "that is one layer; each of the 30 layers keeps its own"),
        (_kv_cache_bytes(tokens, heads=3) / 2 / 1e6, "float32 takes 4 bytes per number"),
        (SMOLLM2["layers"] * 2 * SMOLLM2["d"] * tokens * 4 / 1e6, "that uses d = 576 for keys and values; "
                                                                  "they have 3 heads of 64, 192 numbers per token"),
    ]
    return judge_number(answer, expected, "prediction", significant=3, unit="MB",
                        hints=_hints(expected, slips))
