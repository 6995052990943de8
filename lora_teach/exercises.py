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

from lora_teach import accounting, linalg, lowrank, subspaces
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
                          "that is a combination of the others: A and B each have full rank, and "
                          "nothing cancels in A·B")
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
            "no sigma": U[:, :r] @ Vt[:r], "V not V^T": (U[:, :r] * sigma[:r]) @ Vt.T[:r]}


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
    return judge_number(answer, 2 * 4 * n, "optimizer state", unit="bytes", integer=True,
                        hints={0.5: "one number per parameter; Adam keeps two (a running "
                               "mean of the gradient and of its square)",
                               2.0: "that counts gradients or weights too; the question asks "
                               "for the optimizer's state only",
                               0.125: "that is the number of floats, not bytes (4 bytes each)"})


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
    return [("Model M, full fine-tuning (124,071 of 124,071 trained)", (124_071, 124_071, 4)),
            ("Model M with a frozen encoder (455 trained)", (124_071, 455, 4)),
            ("the 500M Model M in 16-bit numbers, LoRA-sized (983,040 trained)",
             (_model_m_500m(), 983_040, 2)),
            ("nothing trained", (1000, 0, 4))]


def _reference_memory(n_total, n_trainable, bytes_per_number):
    return bytes_per_number * (n_total + n_trainable + 2 * n_trainable)


def _compare_bytes(expected, got) -> str | None:
    value, reason = as_real(got)   # 4.0e6, np.int64 and a 0-d tensor are numbers of bytes too
    if value is None:
        return f"return a number of bytes: {reason}"
    if value == expected:
        return None
    ratio = value / expected if expected else math.inf
    return f"expected {expected:,} bytes, got {value:,.0f} ({ratio:.3g}×)"


@exercise("03.3", "write training_memory(n_total, n_trainable, bytes_per_number)", "coding")
def _(answer):
    return judge_function(answer, _memory_cases(), _reference_memory, _compare_bytes,
                          "my_training_memory")


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
                               "the gradient"})


@exercise("03.5", "gigabytes of 16-bit model files for 25 fully fine-tuned 500M tasks, to 3 "
          "significant digits", "reasoning")
def _(answer):
    return judge_number(answer, 25 * 2 * _model_m_500m() / 1e9, "storage", significant=3,
                        unit="GB", hints={2.0: "that is 32-bit numbers (4 bytes); 16-bit is 2"})


# ---------------------------------------------------------------------------
# 04: adapters
# ---------------------------------------------------------------------------

@exercise("04.1", "trainable adapter parameters for BERT-base with m = 64, two per layer",
          "reasoning")
def _(answer):
    shape = accounting.MODELS["bert-base"]
    expected = accounting.adapter_parameters(shape, bottleneck=64)
    weights_only = shape.n_layers * 2 * 2 * 64 * shape.d_model
    return judge_number(answer, expected, "count", integer=True,
                        hints={0.5: "one adapter per layer; Houlsby et al. put two in each",
                               weights_only / expected: "you left out the biases (m and d per "
                               "adapter)"})


@exercise("04.2", "extra linear layers a prediction waits for, with adapters in a 3-layer "
          "Model M", "reasoning")
def _(answer):
    return judge_number(answer, 2 * 2 * 3, "number of layers", integer=True,
                        hints={0.5: "each adapter has two projections (down and up), and there "
                               "are two adapters per layer"})


def _adapter_cases():
    generator = torch.Generator().manual_seed(3)
    cases = []
    for d, m, n in ((8, 2, 3), (16, 4, 5), (6, 6, 1)):
        x = torch.randn(n, d, generator=generator)
        weights = (torch.randn(m, d, generator=generator), torch.randn(m, generator=generator),
                   torch.randn(d, m, generator=generator), torch.randn(d, generator=generator))
        cases.append((f"x of shape ({n}, {d}) with m = {m}", (x, *weights)))
    return cases


def _reference_adapter(x, down_weight, down_bias, up_weight, up_bias):
    return x + F.linear(F.gelu(F.linear(x, down_weight, down_bias)), up_weight, up_bias)


@exercise("04.3", "write adapter(x, down_weight, down_bias, up_weight, up_bias)", "coding")
def _(answer):
    return judge_function(answer, _adapter_cases(), _reference_adapter,
                          lambda e, g: compare_arrays(e, g, atol=1e-5), "my_adapter")


def _adapter_size(d: int, m: int) -> int:
    return 2 * m * d + d + m


@exercise("04.4", "the largest bottleneck m whose adapter has at most 1% of the parameters of "
          "a 768 x 768 matrix", "construction")
def _(answer):
    d, budget = 768, 0.01 * 768 * 768
    best = max(m for m in range(1, d + 1) if _adapter_size(d, m) <= budget)
    hints = {(best + 1) / best: f"one too many: m = {best + 1} gives "
                                f"{_adapter_size(d, best + 1):,} > {budget:,.0f} parameters",
             int(budget / d) / best: "an adapter has two matrices, down (m × d) and up (d × m), "
                                     "plus d + m biases: 2md + d + m"}
    return judge_number(answer, best, "bottleneck", integer=True, hints=hints)


# ---------------------------------------------------------------------------
# 05: LoRA
# ---------------------------------------------------------------------------

@exercise("05.1", "LoRA's trainable parameters for Llama-2-7B, r = 16 on W_q and W_v",
          "reasoning")
def _(answer):
    expected = accounting.lora_parameters(accounting.MODELS["llama2-7b"], r=16)
    return judge_number(answer, expected, "count", integer=True,
                        hints={0.5: "count both B (d × r) and A (r × k), for both W_q and W_v"})


@exercise("05.2", "which matrix gets a gradient at the first step if A and B both start at 0",
          "reasoning")
def _(answer):
    return judge_choice(answer, "neither", {
        "A": "∂L/∂A contains the factor B, which is zero",
        "B": "∂L/∂B contains the factor A x, which is zero when A is",
        "both": "each gradient contains the other matrix, and both are zero",
        "neither": "each gradient contains the other matrix: both stay at zero forever, which "
                   "is why A starts random"})


@exercise("05.3", "how many singular directions of the trained update (α/r) B A of the first "
          "W_q hold 90% of its energy", "reasoning")
def _(answer, update):
    sigma = linalg.singular_values(np.asarray(update, dtype=float))
    expected = lowrank.rank_for_energy(sigma, 0.90)
    r = int(np.sum(sigma > 1e-4 * sigma[0]))
    hints = {} if r == expected else {r / expected: f"{r} is the rank of the update (at most "
                                                    "r = 8); the question asks how few of its "
                                                    "directions carry 90% of Σσᵢ²"}
    return judge_number(answer, expected, "number of directions", integer=True, hints=hints)


def _lora_cases():
    generator = torch.Generator().manual_seed(5)
    cases = []
    for d, k, r, alpha in ((6, 8, 2, 4.0), (5, 5, 1, 8.0), (3, 7, 3, 1.5)):
        cases.append((f"W0 of shape ({d}, {k}) with r = {r}, alpha = {alpha:g}",
                      (torch.randn(4, k, generator=generator), torch.randn(d, k, generator=generator),
                       torch.randn(d, generator=generator), torch.randn(r, k, generator=generator),
                       torch.randn(d, r, generator=generator), alpha)))
    return cases


def _reference_lora(x, W0, b, A, B, alpha):
    r = A.shape[0]
    forward = F.linear(x, W0, b) + (alpha / r) * F.linear(F.linear(x, A), B)
    merged = W0 + (alpha / r) * B @ A
    return forward, merged


def _compare_lora(expected, got) -> str | None:
    forward, merged = expected
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return two things: the layer's output and the merged weight"
    problem = compare_arrays(forward, got[0], atol=1e-5)
    if problem:
        return f"the forward pass is wrong: {problem}"
    problem = compare_arrays(merged, got[1], atol=1e-5)
    return f"the merged weight is wrong: {problem}" if problem else None


@exercise("05.4", "write lora(x, W0, b, A, B, alpha) returning the output and the merged "
          "weight", "coding")
def _(answer):
    return judge_function(answer, _lora_cases(), _reference_lora, _compare_lora, "my_lora")


@exercise("05.5", "by what factor doubling alpha multiplies the first step's change of the "
          "update (α/r) B A under plain SGD", "reasoning")
def _(answer):
    return judge_number(answer, 4, "factor", integer=True, hints={
        0.5: "one factor of 2 is missing: the gradient of B carries α/r (so B's step doubles), "
             "and the change of (α/r) B A carries α/r once more",
        0.25: "that is Adam's answer for B's own step; plain SGD does not divide the gradient "
              "by its size, so B's step doubles, and (α/r) B A doubles it again"})


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
        0.5: "AdamW keeps two 4-byte numbers per trained parameter (the running means of the "
             "gradient and of its square), and this LoRA has r = 16, not section 8's r = 8",
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

@exercise("07.1", "predict phi(8, 8) between two random 8-dimensional subspaces of R^384, to one "
          "significant digit", "reasoning")
def _(answer):
    n, k = 384, 8
    return judge_number(answer, k / n, "prediction of φ(8, 8)", significant=1, hints={
        float(k): "that is ||U^T V||_F^2 itself; φ divides it by min(i, j) = 8",
        1 / k: "that is one vector's overlap with one random direction; each of the 8 vectors "
               "overlaps the whole 8-dimensional subspace, k/n of its length squared",
        n / k: "φ is at most 1: each unit vector keeps on average k/n of its length squared "
               "when projected onto a random k-dimensional subspace of R^n"})


def _budget_rank(budget: int, d: int, ffn: int, matrices: str) -> int:
    square, ffn_pair = d + d, 2 * (ffn + d)
    per_rank = {"all": 4 * square + ffn_pair, "attention": 4 * square, "q,v": 2 * square,
                "q": square}[matrices]
    return budget // per_rank


@exercise("07.2", "the largest LoRA rank on all six linear layers of a Model M layer with 2,048 "
          "LoRA parameters", "reasoning")
def _(answer):
    expected = _budget_rank(2048, 64, 128, "all")
    return judge_number(answer, expected, "rank", integer=True, hints={
        _budget_rank(2048, 64, 128, "attention") / expected: "that spends the budget on the four "
                                                             "attention matrices only",
        _budget_rank(2048, 64, 128, "q,v") / expected: "that is the rank for W_q and W_v only",
        _budget_rank(2048, 64, 128, "q") / expected: "that is the rank for W_q alone",
        2048 / (6 * 128) / expected: "the feed-forward matrices are 128 x 64 and 64 x 128: each "
                                     "costs r (128 + 64), not r (64 + 64); and r must be whole",
        (expected + 1) / expected: f"r = {expected + 1} costs more than 2,048 parameters per "
                                   f"layer: take the largest whole r that fits the budget"})


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
    return subspaces.subspace_similarity(u, v)


@exercise("07.3", "write phi(U, V), the matrix of phi(i, j) = ||U_i^T V_j||_F^2 / min(i, j)",
          "coding")
def _(answer):
    return judge_function(answer, _phi_cases(), _reference_phi,
                          lambda expected, got: compare_arrays(expected, got, atol=1e-9), "phi")


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
    cases = [(f"a block of {n} normal values and 16 levels", (torch.randn(n, generator=generator), levels))
             for n in (64, 7)]
    cases.append(("a block with one large outlier", (torch.tensor([0.1, -0.2, 5.0, 0.05]), levels)))
    cases.append(("a block of zeros", (torch.zeros(8), levels)))
    return cases


def _reference_block(block, levels):
    """The restored block and its absmax, then what two usual slips would give: the block's
    signed maximum as "absmax", and levels matched to the block without dividing by absmax."""
    absmax = block.abs().max()
    unscaled = levels[_nearest(block, torch.ones(()), levels)] * absmax
    return levels[_nearest(block, absmax, levels)] * absmax, absmax, block.max(), unscaled


def _nearest(block, absmax, levels):
    scaled = block / absmax if absmax > 0 else block
    return (scaled[:, None] - levels[None, :]).abs().argmin(dim=1)


def _compare_block(expected, got) -> str | None:
    restored, absmax, signed_max, unscaled = expected
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return two things: the codes and the absmax"
    codes, their_absmax = got
    problem = compare_arrays(absmax, their_absmax)
    if problem:
        if signed_max != absmax and compare_arrays(signed_max, their_absmax) is None:
            return ("your absmax is the block's largest value; absmax is the largest absolute "
                    "value, so that a negative outlier is covered too")
        return f"absmax is wrong: {problem}"
    codes = as_array(codes)
    if codes is None:
        return "codes must be a tensor of level indices"
    if codes.shape != tuple(restored.shape) or not np.isin(codes, np.arange(16)).all():
        return f"codes must hold one whole index 0-15 per value, got shape {codes.shape}"
    levels = torch.linspace(-1, 1, 16)
    theirs = levels[torch.as_tensor(codes, dtype=torch.long)] * absmax
    problem = compare_arrays(restored, theirs, atol=1e-6)
    if problem and compare_arrays(unscaled, theirs, atol=1e-6) is None:
        return ("your codes are the levels nearest to the block itself; divide the block by its "
                "absmax first, so that its values lie in [-1, 1] like the levels")
    return problem


@exercise("08.3", "write quantise_block(block, levels) returning (codes, absmax)", "coding")
def _(answer):
    return judge_function(answer, _block_cases(), _reference_block, _compare_block, "quantise_block")


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
