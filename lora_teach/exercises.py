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


@exercise("01.3", "the coefficients of C4 = c1·C1 + c3·C3 in P", "construction")
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


# ---------------------------------------------------------------------------
# 02: low-rank decomposition
# ---------------------------------------------------------------------------

@exercise("02.1", "numbers stored by a rank-16 factorisation of a 1024 x 4096 matrix", "reasoning")
def _(answer):
    d, k, r = 1024, 4096, 16
    return judge_number(answer, lowrank.factorized_parameters(d, k, r), "count", integer=True,
                        hints={r * d / (r * (d + k)): "you counted only B (d × r), not A (r × k)",
                               r * k / (r * (d + k)): "you counted only A (r × k), not B (d × r)",
                               d * k / (r * (d + k)): "that is the dense matrix, d × k"})


@exercise("02.2", "the break-even rank of a 768 x 3072 matrix, to 3 significant digits",
          "reasoning")
def _(answer):
    d, k = 768, 3072
    expected = lowrank.break_even_rank(d, k)
    return judge_number(answer, expected, "break-even rank", significant=3,
                        hints={(d / 2) / expected: "d/2 is the rule for a square matrix; solve "
                               "r(d + k) = dk for this one",
                               (k / 2) / expected: "k/2 is not it either; solve r(d + k) = dk"})


@exercise("02.3", "the rank that keeps 90% of the centred photo's energy", "reasoning")
def _(answer, singular_values):
    return judge_number(answer, lowrank.rank_for_energy(singular_values, 0.90), "rank",
                        integer=True)


def _svd_cases():
    generator = np.random.default_rng(7)
    rank_3 = generator.standard_normal((5, 3)) @ generator.standard_normal((3, 5))
    return [("a random 6 × 4 matrix with r = 2", (generator.standard_normal((6, 4)), 2)),
            ("a 5 × 5 matrix of rank 3 with r = 3", (rank_3, 3)),
            ("a wide 3 × 7 matrix with r = 1", (generator.standard_normal((3, 7)), 1))]


def _compare_factors(expected, got) -> str | None:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return two matrices, (B, A)"
    B, A = (as_array(m) for m in got)
    if B is None or A is None:
        return (f"B and A must be matrices of numbers; you returned ({type(got[0]).__name__}, "
                f"{type(got[1]).__name__})")
    d, k = expected.shape
    if B.ndim != 2 or A.ndim != 2 or B.shape[0] != d or A.shape[1] != k or B.shape[1] != A.shape[0]:
        return (f"B should be {d} × r and A r × {k}; yours are {B.shape} and {A.shape}")
    return compare_arrays(expected, B @ A, atol=1e-8)


@exercise("02.4", "write truncated_svd(M, r) returning B (d × r) and A (r × k)", "coding")
def _(answer):
    return judge_function(answer, _svd_cases(), lowrank.low_rank_approximation,
                          _compare_factors, "my_truncated_svd")


@exercise("02.5", "the Frobenius error of the best rank-1 approximation of Q, to 3 significant "
          "digits", "reasoning")
def _(answer, Q):
    sigma = linalg.singular_values(Q)
    expected = lowrank.eckart_young_error(sigma, 1)
    return judge_number(answer, expected, "error", significant=3,
                        hints={sigma[1] / expected: "that is σ₂ alone; the error adds the squares "
                               "of every discarded singular value, then takes the root",
                               float(np.sum(sigma[1:] ** 2)) / expected: "that is the sum of "
                               "squares; take its square root"})


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


@exercise("06.1", "LoRA's trainable parameters with r = 8 on every linear layer of MiniLM's 6 "
          "encoder layers (no head, no pooler)", "reasoning")
def _(answer):
    expected = _lora_all_linear_minilm(8)
    attention_only = MINILM["layers"] * 4 * 8 * 2 * MINILM["d"]
    square = MINILM["layers"] * 6 * 8 * 2 * MINILM["d"]
    return judge_number(answer, expected, "count", integer=True, hints={
        attention_only / expected: "that counts the four attention matrices only; the feed-forward "
                                   "block has two more linear layers",
        square / expected: "the feed-forward matrices are 1536 x 384 and 384 x 1536, not 384 x 384",
        2 * MINILM["layers"] * 8 * 2 * MINILM["d"] / expected: "that is LoRA on query and value only",
        0.5: "count both B (d_out x r) and A (r x d_in)"})


@exercise("06.2", "bytes of AdamW's state for LoRA with r = 16 on query and value of MiniLM "
          "(32-bit numbers, head left out)", "reasoning")
def _(answer):
    trainable = MINILM["layers"] * 2 * 16 * 2 * MINILM["d"]
    return judge_number(answer, 2 * 4 * trainable, "optimizer state", unit="bytes", integer=True, hints={
        0.5: "AdamW keeps two numbers per trained parameter (the running mean of the gradient and "
             "of its square)",
        0.25: "each 32-bit number takes 4 bytes, and AdamW keeps two per trained parameter",
        0.125: "that is the number of trained parameters; AdamW keeps two 4-byte numbers for each"})


IGNORE = -100   # the label a token gets when the loss should skip it (PyTorch's default)


def _alignment_cases():
    return [("the words ['Nokia', 'shares', 'rose'] split as [CLS] no ##kia shares rose [SEP]",
             ([None, 0, 0, 1, 2, None], ["B-ORG", "O", "O"])),
            ("one word split in three: [CLS] he ##ls ##inki [SEP]",
             ([None, 0, 0, 0, None], ["B-LOC"])),
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
        i * j / n / expected: "that is the average ||U_4^T V_16||_F^2 itself; φ divides it by "
                              "min(i, j)",
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
    cases = [(f"a block of {n} normal values and 16 levels", (torch.randn(n, generator=generator), levels))
             for n in (64, 7)]
    cases.append(("a block with one large outlier", (torch.tensor([0.1, -0.2, 5.0, 0.05]), levels)))
    cases.append(("a block of zeros", (torch.zeros(8), levels)))
    return cases


def _reference_block(block, levels):
    absmax = block.abs().max()
    return (levels[_nearest(block, absmax, levels)] * absmax), absmax


def _nearest(block, absmax, levels):
    scaled = block / absmax if absmax > 0 else block
    return (scaled[:, None] - levels[None, :]).abs().argmin(dim=1)


def _compare_block(expected, got) -> str | None:
    restored, absmax = expected
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        return "return two things: the codes and the absmax"
    codes, their_absmax = got
    problem = compare_arrays(absmax, their_absmax)
    if problem:
        return f"absmax is wrong: {problem}"
    codes = as_array(codes)
    if codes is None:
        return "codes must be a tensor of level indices"
    if codes.shape != tuple(restored.shape) or not np.isin(codes, np.arange(16)).all():
        return f"codes must hold one whole index 0-15 per value, got shape {codes.shape}"
    levels = torch.linspace(-1, 1, 16)
    return compare_arrays(restored, levels[torch.as_tensor(codes, dtype=torch.long)] * absmax, atol=1e-6)


@exercise("08.3", "write quantise_block(block, levels) returning (codes, absmax)", "coding")
def _(answer):
    return judge_function(answer, _block_cases(), _reference_block, _compare_block, "quantise_block")
