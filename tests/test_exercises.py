"""Tests for lora_teach.exercises: every exercise accepts its solution and explains slips."""

import ast
import json
import math
import pathlib

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F

from lora_teach import exercises, linalg
from lora_teach.feedback import ExerciseSetupError

P = sympy.Matrix([[1, 2, 0, 3], [2, 4, 1, 7], [3, 6, 1, 10]])
W_CR = (np.array([[1, 7], [2, 10], [3, 15], [4, 12]]) @ np.array([[1, 0, 2, 1, 1], [0, 1, 0, 1, 2]]))
W_NOISY = W_CR + 1e-6 * np.random.default_rng(1).standard_normal((4, 5))
Q = np.diag([5.0, 3.0, 1.0]) @ np.array([[0.0, 1.0, 0.0], [0.6, 0.0, 0.8], [0.8, 0.0, -0.6]])
SIGMA = np.array([10.0, 5.0, 3.0, 1.0, 0.5])
_ORTHO = np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))[0]
# singular values 10, 3, 1: the first direction holds 100 / 110 > 90% of the energy; rank 3
UPDATE = _ORTHO[:, :3] @ np.diag([10.0, 3.0, 1.0]) @ _ORTHO[:, 3:6].T


S = [[1, 0, 2, 5], [0, 1, 1, 2], [2, 1, 3, 9], [1, 3, 0, 2]]   # C4 = C1 + 2·C3 fails in rows 3, 4


def _repaired():
    fixed = [row[:] for row in S]
    fixed[2][3], fixed[3][3] = 8, 1
    return fixed


def _repaired_with_extra_change():
    fixed = _repaired()
    fixed[0][0], fixed[0][3] = 2, 6      # still holds in row 1, but two more entries changed
    return fixed


def _svd(M, r):
    u, s, vt = np.linalg.svd(M, full_matrices=False)
    return u[:, :r] * s[:r], vt[:r]


def _lora(x, W0, b, A, B, alpha):
    scaling = alpha / A.shape[0]
    return F.linear(x, W0, b) + scaling * x @ A.T @ B.T, W0 + scaling * B @ A


def _align(word_ids, word_labels):
    labels = []
    for position, word in enumerate(word_ids):
        first = word is not None and (position == 0 or word_ids[position - 1] != word)
        labels.append(word_labels[word] if first else -100)
    return labels



def _quantise_block(block, levels):
    absmax = block.abs().max()
    scaled = block / absmax if absmax > 0 else block
    return (scaled[:, None] - levels[None, :]).abs().argmin(dim=1), absmax


def _phi(U, V):
    overlap = (U.T @ V) ** 2
    return overlap.cumsum(0).cumsum(1) / np.minimum(np.arange(1, U.shape[1] + 1)[:, None],
                                                     np.arange(1, V.shape[1] + 1)[None, :])

# exercise id: (context, a solution, [(a wrong answer, words its feedback must contain)])
CASES = {
    "01.1": ({"P": P}, 2, [(3, "Too high"), (1, "Too low"), (5, "impossible")]),
    "01.2": ({"P": P}, [1, 3], [([0, 2], "counted from 0"), ([1, 2], "missing [3]")]),
    "01.3": ({"P": P}, [3, 1], [([1, 3], "fails in row(s)")]),
    "01.4": ({"S": S}, _repaired(), [(S, "still fails in row(s) [3, 4]"),
                                     (_repaired_with_extra_change(), "2 are enough")]),
    "01.5": ({"W_noisy": W_NOISY}, 1e-3, [(1e-9, "Too small"), (10.0, "Too large")]),
    "02.1": ({}, 16 * (1024 + 4096), [(16 * 1024, "only B"), (1024 * 4096, "dense")]),
    "02.2": ({}, 614.4, [(384, "square matrix"), (610, "significant digits")]),
    "02.3": ({"singular_values": SIGMA}, 2, [(3, "too high"), (5, "too high")]),
    "02.4": ({}, _svd, [(lambda M, r: _svd(M, r)[::-1], "B should be"),
                        (lambda M, r: (np.zeros((M.shape[0], r)), np.zeros((r, M.shape[1]))),
                         "largest difference")]),
    "02.5": ({"Q": Q}, 3.16, [(3.0, "σ₂ alone"), (10.0, "square root"), (3.2, "significant")]),
    "03.1": ({}, 8 * 513_626_880, [(4 * 513_626_880, "Adam keeps two"),
                                   (8 * 513_626_880 / 1e9, "in GB")]),
    "03.2": ({"precision": 0.9243, "recall": 0.9401}, 0.932, [(0.93, "significant digits"),
                                                             (0.85, "too low")]),
    "03.3": ({}, lambda total, trainable, size: size * (total + 3 * trainable),
             [(lambda total, trainable, size: 4 * (total + 3 * trainable), "16-bit"),
              (lambda total, trainable, size: size * 4 * total, "frozen encoder")]),
    "03.4": ({}, 6.16, [(8.22, "frozen weights stay"), (4.11, "gradient")]),
    "03.5": ({}, 25.7, [(51.4, "32-bit"), (25 * 2 * 513_626_880, "in bytes")]),
    "04.1": ({}, 2_379_264, [(2_379_264 // 2, "one adapter per layer"), (2_359_296, "biases")]),
    "04.2": ({}, 12, [(6, "two projections"), (11, "too low")]),
    "04.3": ({}, lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wd, bd)), wu, bu),
             [(lambda x, wd, bd, wu, bu: F.linear(F.gelu(F.linear(x, wd, bd)), wu, bu),
               "largest difference")]),
    "04.4": ({}, 3, [(4, "one too many"), (7, "two matrices")]),
    "05.1": ({}, 8_388_608, [(4_194_304, "count both")]),
    "05.2": ({}, "neither", [("A", "factor B")]),
    "05.3": ({"update": UPDATE}, 1, [(3, "rank of the update"), (16, "too high")]),
    "05.4": ({}, _lora, [(lambda x, W0, b, A, B, alpha: (F.linear(x, W0, b) + alpha * x @ A.T @ B.T,
                                                          W0 + alpha * B @ A), "forward pass is wrong"),
                         (lambda x, W0, b, A, B, alpha: (_lora(x, W0, b, A, B, alpha)[0], W0),
                          "merged weight is wrong")]),
    "05.5": ({}, 4, [(2, "one factor of 2"), (1, "Adam's answer")]),
    "06.1": ({}, 6 * (4 * 8 * 768 + 2 * 8 * (384 + 1536)),
             [(73_728, "query and value only"), (6 * 6 * 8 * 768, "1536 x 384")]),
    "06.2": ({}, 2 * 4 * (6 * 2 * 16 * 768), [(147_456, "two 4-byte numbers"),
                                              (2 * 147_456, "takes 4 bytes"),
                                              (4 * 147_456, "two numbers per")]),
    "06.3": ({}, _align, [(lambda ids, labels: [-100 if i is None else labels[i] for i in ids],
                           "token 2 should get -100"),
                          (lambda ids, labels: [labels[0]] * len(ids), "token 0 should get -100")]),
    "07.1": ({}, 0.042, [(0.17, "divides it by min"), (0.0026, "one direction of each"), (0.5, "too high")]),
    "07.2": ({}, 3584, [(1792, "one layer's count"), (3072, "r (128 + 64)"), (2, "looks like a rank")]),
    "08.1": ({}, 6.71, [(6.5, "constant"), (7.31, "without double quantisation"), (6.7, "significant")]),
    "08.2": ({}, 7680, [(6 * 2 * 384, "lambda_d"), (3840, "two adapted"), (2_359_296, "LoRA's count")]),
    "08.3": ({}, _quantise_block, [(lambda b, levels: ((b[:, None] - levels[None, :]).abs().argmin(1), b.abs().max()),
                                    "largest difference"),
                                   (lambda b, levels: (torch.zeros(len(b)), b.abs().max()), "largest difference")]),
    "07.3": ({}, _phi, [(lambda U, V: (U.T @ V) ** 2, "each pair's own"),
                        (lambda U, V: (U.T @ V) ** 2 @ np.ones((V.shape[1], 1)), "shape")]),
}


def test_every_exercise_is_tested_here_and_has_a_kind():
    assert set(CASES) == set(exercises.EXERCISES)
    assert {e.kind for e in exercises.EXERCISES.values()} == set(exercises.KINDS)


@pytest.mark.parametrize("notebook", ["02", "03", "04", "05"])
def test_notebooks_02_to_05_each_have_a_coding_exercise(notebook):
    kinds = [e.kind for i, e in exercises.EXERCISES.items() if i.startswith(notebook + ".")]
    assert "coding" in kinds


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_the_solution_is_correct_and_slips_are_named(exercise_id):
    context, solution, wrong_answers = CASES[exercise_id]
    feedback = exercises.check(exercise_id, solution, **context)
    assert feedback.correct, feedback.message
    for answer, words in wrong_answers:
        feedback = exercises.check(exercise_id, answer, **context)
        assert not feedback.correct and words in feedback.message, (answer, feedback.message)


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_no_answer_makes_a_checker_raise(exercise_id):
    context = CASES[exercise_id][0]
    assert exercises.check(exercise_id, None, **context).message.startswith("Not answered yet")
    for answer in (math.nan, "x", [1, 2], object(), -1, 2 + 1j, lambda *a: 1 / 0, torch.ones(2)):
        feedback = exercises.check(exercise_id, answer, **context)
        assert not feedback.correct and feedback.message.startswith("Not yet.")


def test_an_unknown_exercise_or_missing_context_is_an_error_for_the_author():
    with pytest.raises(ExerciseSetupError, match="no exercise '09.9'"):
        exercises.check("09.9", 1)
    with pytest.raises(ExerciseSetupError, match="01.1"):
        exercises.check("01.1", 2)   # forgot P=
    with pytest.raises(ExerciseSetupError, match="01.4"):
        exercises.check("01.4", _repaired(), s=S)   # misspelt S=
    assert linalg.exact_rank(P) == 2


# --- issue 22: a checker cannot be fooled, never raises, and takes a right answer in any form ---

CODING = sorted(i for i, e in exercises.EXERCISES.items() if e.kind == "coding")


def _wipe(value) -> bool:
    """Zero a tensor or array in place, or empty a list, as a careless x *= 0 would; False for
    a value that cannot be changed in place (a number)."""
    if isinstance(value, torch.Tensor):
        value.zero_()
    elif isinstance(value, np.ndarray):
        value[...] = 0
    elif isinstance(value, list):
        value.clear()
    else:
        return False
    return True


@pytest.mark.parametrize("exercise_id", CODING)
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_function_that_changes_its_inputs_is_not_correct(exercise_id, when):
    # "before": wipe the inputs, then run the solution on them. The reference used to run
    # afterwards on the same wiped inputs and agree. "after": a right result, but the
    # caller's tensors are destroyed.
    context, solution, _ = CASES[exercise_id]
    wiped = []

    def careless(*arguments):
        if when == "before":
            wiped.extend(_wipe(a) for a in arguments)
        result = solution(*arguments)
        if when == "after":
            wiped.extend(_wipe(a) for a in arguments)
        return result
    feedback = exercises.check(exercise_id, careless, **context)
    if any(wiped):
        assert not feedback.correct and "in place" in feedback.message, feedback.message
    else:   # 03.3 takes numbers only: nothing to change, so the solution is still right
        assert feedback.correct, feedback.message


def test_the_message_names_the_input_that_was_changed():
    def adapter(x, down_weight, down_bias, up_weight, up_bias):
        up_bias += 1
        return x + F.linear(F.gelu(F.linear(x, down_weight, down_bias)), up_weight, up_bias - 1)
    assert "changed its input up_bias in place" in exercises.check("04.3", adapter).message


def _notebook_01_s():
    """The matrix S as notebook 01 defines it, read from the notebook's cell."""
    notebook = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "01_rank_and_linear_independence.ipynb"
    for cell in json.loads(notebook.read_text())["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and source.startswith("S = sympy.Matrix("):
            return ast.literal_eval(ast.parse(source).body[0].value.args[0])
    raise AssertionError("notebook 01 has no cell defining S")


def test_01_4_judges_against_the_notebooks_s():
    assert _notebook_01_s() == S == [list(row) for row in exercises.MISTYPED_S]


def test_01_4_is_not_fooled_when_the_notebook_s_itself_was_edited():
    notebook_S = sympy.Matrix(S)
    my_S = notebook_S                                  # no copy: my_S is another name for S
    wasteful = _repaired_with_extra_change()
    for i in range(4):
        for j in range(4):
            my_S[i, j] = wasteful[i][j]
    feedback = exercises.check("01.4", my_S, S=notebook_S)
    assert not feedback.correct and "2 are enough" in feedback.message and "S.copy()" in feedback.message
    right = sympy.Matrix(S)
    right[2, 3], right[3, 3] = _repaired()[2][3], _repaired()[3][3]
    assert exercises.check("01.4", right, S=right).correct   # right, though S was edited too


def _odd_answers():
    """Answers and return values a student might give by mistake, made fresh for each use."""
    return ["three", "", 10 ** 400, -10 ** 400, math.nan, math.inf, -math.inf, [[1, 2], [3]], [[[1]]],
            (n for n in range(3)), {"a": 1}, {1, 2}, object(), torch.ones(2, 3), torch.ones(3, dtype=torch.bool),
            torch.tensor([1 + 2j]), torch.zeros(0), torch.ones(2, 3, dtype=torch.float16), np.array(["a"]),
            (np.zeros((2, 2)), {}), [np.zeros(2), (n for n in range(2))], (None, None),
            lambda *arguments: 1 / 0, lambda *arguments: [_wipe(a) for a in arguments]]


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_odd_answers_and_odd_return_values_get_feedback(exercise_id):
    context = CASES[exercise_id][0]
    answers = _odd_answers()
    if exercise_id in CODING:
        answers += [lambda *arguments, value=value: value for value in _odd_answers()]
    for answer in answers:
        feedback = exercises.check(exercise_id, answer, **context)
        assert not feedback.correct and feedback.message.startswith("Not"), (answer, feedback.message)
        assert "could not be checked" not in feedback.message, feedback.message   # a specific reason


def test_an_error_while_judging_is_feedback_not_blamed_on_the_notebook(monkeypatch):
    # regression: any TypeError mentioning "argument" was taken for a missing notebook object
    def judge(answer):
        return float(answer)   # "float() argument must be ... not 'dict'"
    monkeypatch.setitem(exercises.EXERCISES, "99.1", exercises.Exercise("a test", "reasoning", judge))
    feedback = exercises.check("99.1", {})
    assert not feedback.correct and "could not be checked (TypeError" in feedback.message


def test_02_4_factors_that_are_no_matrices_get_feedback():
    # regressions: (B, dict) and (B, generator) made check raise
    for second in ({}, (n for n in range(3))):
        feedback = exercises.check("02.4", lambda M, r, second=second: (_svd(M, r)[0], second))
        assert not feedback.correct and "B and A must be matrices of numbers" in feedback.message


def _numbers(x):
    """The number x as numpy, torch and sympy write it (a whole x as a float too)."""
    forms = [np.float64(x), np.array(x), torch.tensor(x, dtype=torch.float64), sympy.Float(x)]
    if isinstance(x, int):
        forms += [float(x), np.int64(x), torch.tensor(x), sympy.Integer(x)]
    return forms


def _as_numpy(result):
    return tuple(r.numpy() if isinstance(r, torch.Tensor) else r for r in result)


def _solution_forms(exercise_id):
    """Other ways to write the solution in CASES that mean the same."""
    solution = CASES[exercise_id][1]
    if exercise_id in ("01.2", "01.3", "01.4"):
        forms = [np.array(solution), np.array(solution, dtype=float), torch.tensor(solution),
                 tuple(solution), sympy.Matrix(solution)]
        if exercise_id == "01.2":   # a set of column numbers; the coefficients of 01.3 have an order
            forms += [set(solution), [float(c) for c in solution]]
        return forms
    if exercise_id == "05.2":
        return [np.str_(solution)]
    if exercise_id not in CODING:
        return _numbers(solution)
    forms = {
        "02.4": [lambda M, r: list(_svd(M, r)), lambda M, r: tuple(torch.from_numpy(m) for m in _svd(M, r))],
        "03.3": [lambda *a: float(solution(*a)), lambda *a: torch.tensor(solution(*a)),
                 lambda *a: np.int64(solution(*a))],
        "04.3": [lambda *a: solution(*a).numpy(), lambda *a: solution(*a).tolist()],
        "05.4": [lambda *a: list(solution(*a)), lambda *a: _as_numpy(solution(*a))],
        "06.3": [lambda *a: tuple(solution(*a)), lambda *a: (label for label in solution(*a)),
                 lambda *a: [np.int64(label) if isinstance(label, int) else label for label in solution(*a)]],
        "07.3": [lambda U, V: torch.from_numpy(solution(U, V)), lambda U, V: solution(U, V).tolist()],
        "08.3": [lambda *a: list(solution(*a)), lambda *a: (solution(*a)[0].tolist(), float(solution(*a)[1])),
                 lambda *a: (solution(*a)[0].float(), solution(*a)[1].item())],
    }
    return forms[exercise_id]


@pytest.mark.parametrize("exercise_id", sorted(CASES))
def test_a_right_answer_in_another_form_is_right(exercise_id):
    context = CASES[exercise_id][0]
    for answer in _solution_forms(exercise_id):
        feedback = exercises.check(exercise_id, answer, **context)
        assert feedback.correct, (exercise_id, answer, feedback.message)


def test_01_3_refuses_a_set_and_says_why():
    feedback = exercises.check("01.3", {3, 1}, P=P)
    assert not feedback.correct and "A set has no order" in feedback.message


# --- Notebook 07 (issue 25): each named slip gets its own message; no ratio, no answer ---------

def _phi_slip(kind):
    """phi(U, V) with one of the usual slips."""
    def slipped(U, V):
        overlap = (U.T @ V) ** 2
        i = np.arange(1, U.shape[1] + 1)[:, None]
        j = np.arange(1, V.shape[1] + 1)[None, :]
        return {"no sums": overlap, "no division": overlap.cumsum(0).cumsum(1),
                "rows only": overlap.cumsum(0) / np.minimum(i, j),
                "columns only": overlap.cumsum(1) / np.minimum(i, j),
                "max": overlap.cumsum(0).cumsum(1) / np.maximum(i, j),
                "product": overlap.cumsum(0).cumsum(1) / (i * j),
                "not squared": (U.T @ V).cumsum(0).cumsum(1) / np.minimum(i, j),
                "transposed": _phi(U, V).T}[kind]
    return slipped


NOTEBOOK_07_SLIPS = {
    "07.1": [(64 / 384, "||U_4^T V_16||_F^2 itself; φ divides it by min(i, j)"),
             (1 / 384, "one direction of each subspace"),
             (4 / 384, "treats both subspaces as 4-dimensional"),
             (4 / 16, "leaves out the size of the space"),
             (100 * 16 / 384, "not a percentage"),
             (1, "only when one subspace lies inside the other")],
    "07.2": [(4096, "4,096 is the whole budget"), (1792, "one layer's count"),
             (3072, "each costs r (128 + 64) parameters, not r (64 + 64)"),
             (5376, "costs more than 2,048 parameters per layer"),
             (7168, "spends 4,096 on each layer"),
             (2, "looks like a rank"), (4.0, "looks like a rank")],
    "07.3": [(_phi_slip("no sums"), "each pair's own <u_i, v_j>^2"),
             (_phi_slip("no division"), "||U_i^T V_j||_F^2 itself: φ divides it by min(i, j)"),
             (_phi_slip("rows only"), "summed along one axis only"),
             (_phi_slip("columns only"), "summed along one axis only"),
             (_phi_slip("max"), "you divide by max(i, j)"),
             (_phi_slip("product"), "you divide by i·j"),
             (_phi_slip("not squared"), "square the entries of U^T V"),
             (_phi_slip("transposed"), "the transpose of the expected")],
}


@pytest.mark.parametrize("exercise_id", sorted(NOTEBOOK_07_SLIPS))
def test_07_each_named_slip_gets_its_own_message_without_the_answer(exercise_id):
    right = {"07.1": "0.042", "07.2": "3,584"}.get(exercise_id)
    for answer, words in NOTEBOOK_07_SLIPS[exercise_id]:
        feedback = exercises.check(exercise_id, answer)
        assert not feedback.correct and words in feedback.message, (answer, feedback.message)
        assert "× the right" not in feedback.message and "right value" not in feedback.message, feedback.message
        if right:
            assert right not in feedback.message and right.replace(",", "") not in feedback.message


def test_07_1_and_07_2_take_a_right_answer_in_any_form():
    for answer in (0.042, 1 / 24, 0.0417, np.float32(0.042), torch.tensor(0.042)):
        assert exercises.check("07.1", answer).correct, answer
    for answer in (3584, 3584.0, np.int64(3584), torch.tensor(3584), [3584][0]):
        assert exercises.check("07.2", answer).correct, answer


def test_07_1_is_judged_at_two_significant_digits():
    assert not exercises.check("07.1", 0.04).correct         # one digit: not the precision asked
    assert not exercises.check("07.1", 0.043).correct
    assert exercises.check("07.1", 0.0415).correct


def test_07_2_a_nearby_count_is_only_too_high_or_too_low():
    for answer, direction in ((3500, "too low"), (3700, "too high")):
        feedback = exercises.check("07.2", answer)
        assert not feedback.correct and direction in feedback.message, feedback.message

