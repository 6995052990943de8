"""Tests for lora_teach.exercises: every exercise accepts its solution and explains slips."""

import ast
import json
import math
import pathlib
import re

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
_RNG_01_7 = np.random.default_rng(7)   # A and B of exercise 01.7, drawn as notebook 01 draws them
A_01_7, B_01_7 = _RNG_01_7.integers(-3, 4, size=(7, 3)), _RNG_01_7.integers(-3, 4, size=(3, 5))


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


def _quantise_blocks(weights, levels, block_size):
    parts = [_quantise_block(weights[start:start + block_size], levels)
             for start in range(0, len(weights), block_size)]
    return torch.cat([codes for codes, _ in parts]), torch.stack([absmax for _, absmax in parts])


def _one_absmax(weights, levels, block_size):
    return _quantise_block(weights, levels)


def _last_block_dropped(weights, levels, block_size):
    return _quantise_blocks(weights[:len(weights) // block_size * block_size], levels, block_size)


def _signed_max(weights, levels, block_size):
    codes, _ = _quantise_blocks(weights, levels, block_size)
    return codes, torch.stack([weights[i:i + block_size].max() for i in range(0, len(weights), block_size)])


def _not_scaled(weights, levels, block_size):
    return (weights[:, None] - levels[None, :]).abs().argmin(1), _quantise_blocks(weights, levels, block_size)[1]


def _phi(U, V):
    overlap = (U.T @ V) ** 2
    return overlap.cumsum(0).cumsum(1) / np.minimum(np.arange(1, U.shape[1] + 1)[:, None],
                                                     np.arange(1, V.shape[1] + 1)[None, :])

# 02.6: an update with singular values 10/i, i = 1..48 (as notebook 02 builds it)
UPDATE_02_6 = (np.linalg.qr(np.random.default_rng(3).standard_normal((64, 48)))[0] * (10.0 / np.arange(1, 49))
               @ np.linalg.qr(np.random.default_rng(4).standard_normal((48, 48)))[0].T)

# 09: SmolLM2-135M's shapes (30 layers, d = 576, 3 key/value heads of 64, feed-forward 1,536)
LAYERS_09, D_09, KV_09, FFN_09 = 30, 576, 3 * 64, 1536
SHAPES_09 = {"q_proj": (D_09, D_09), "k_proj": (D_09, KV_09), "v_proj": (D_09, KV_09), "o_proj": (D_09, D_09),
             "gate_proj": (D_09, FFN_09), "up_proj": (D_09, FFN_09), "down_proj": (FFN_09, D_09)}
LORA_LAYER_09 = sum(8 * (d_in + d_out) for d_in, d_out in SHAPES_09.values())   # r = 8, one layer
KV_CACHE_09 = LAYERS_09 * 2 * KV_09 * 512 * 4   # keys and values, 512 tokens, float32: bytes


def _answer_labels(input_ids, prompt_lengths, lengths):
    positions = torch.arange(input_ids.shape[1])
    answer = (positions >= prompt_lengths[:, None]) & (positions < lengths[:, None])
    return torch.where(answer, input_ids, torch.full_like(input_ids, -100))


def _answer_labels_in_a_loop(input_ids, prompt_lengths, lengths):
    labels = input_ids.clone()
    for row, (start, end) in enumerate(zip(prompt_lengths.tolist(), lengths.tolist())):
        labels[row, :start] = -100
        labels[row, end:] = -100
    return labels


def _labels_slip(kind):
    """answer_labels with one of the usual slips."""
    def slipped(input_ids, prompt_lengths, lengths):
        positions = torch.arange(input_ids.shape[1])
        before, after = positions < prompt_lengths[:, None], positions >= lengths[:, None]
        labels = _answer_labels(input_ids, prompt_lengths, lengths)
        shifted = torch.full_like(labels, -100)
        shifted[:, :-1] = labels[:, 1:]
        return {"padding labelled": input_ids.masked_fill(before, -100),
                "prompt labelled": input_ids.masked_fill(after, -100),
                "early": _answer_labels(input_ids, prompt_lengths - 1, lengths),
                "late": _answer_labels(input_ids, prompt_lengths + 1, lengths),
                "shifted": shifted,
                "nothing masked": input_ids.clone(),
                "one column short": labels[:, 1:],
                "padding by its id": input_ids.masked_fill(before | (input_ids == 2), -100),
                "off by one somewhere": labels.masked_fill(labels == 26, 0)}[kind]
    return slipped


# exercise id: (context, a solution, [(a wrong answer, words its feedback must contain)])
CASES = {
    "01.1": ({"P": P}, 2, [(3, "Too high"), (1, "Too low"), (5, "impossible")]),
    "01.2": ({"P": P}, [1, 3], [([0, 2], "counted from 0"), ([1, 2], "leaves out a column")]),
    "01.3": ({"P": P}, [3, 1], [([1, 3], "fails in row(s)")]),
    "01.4": ({"S": S}, _repaired(), [(S, "still fails in row(s) [3, 4]"),
                                     (_repaired_with_extra_change(), "2 are enough")]),
    "01.6": ({}, lambda M, tol: int(np.sum(np.linalg.svd(M, compute_uv=False) > tol)),
             [(lambda M, tol: int(np.sum(np.linalg.svd(M, compute_uv=False) >= tol)), "strictly above tol"),
              (lambda M, tol: np.linalg.matrix_rank(M), "ignored tol")]),
    "01.7": ({"A": A_01_7, "B": B_01_7}, 3, [(5, "each of its columns is A times"),
                                            (6, "ranks do not add"), (2, "ask what bounds the rank")]),
    "01.5": ({"W_noisy": W_NOISY}, 1e-3, [(1e-9, "Too small"), (10.0, "Too large")]),
    "02.1": ({}, 16 * (1024 + 4096), [(16 * 1024, "only B"), (1024 * 4096, "dense")]),
    "02.2": ({}, 614.4, [(384, "square matrix"), (610, "significant digits")]),
    "02.3": ({"singular_values": SIGMA}, 2, [(3, "rank for 99%"), (1, "np.argmax"), (5, "too high")]),
    "02.4": ({}, _svd, [(lambda M, r: _svd(M, r)[::-1], "you returned (A, B)"),
                        (lambda M, r: (np.zeros((M.shape[0], r)), np.zeros((r, M.shape[1]))),
                         "largest difference")]),
    "02.5": ({"Q": Q}, 3.16, [(3.0, "σ₂ alone"), (10.0, "square root"), (3.2, "significant")]),
    "02.6": ({"update": UPDATE_02_6}, 27, [(5, "90% of the energy"), (9, "spectral-norm error"),
                                          (31, "you added up σᵢ"), (26, "np.argmax"), (30, "too high")]),
    "03.1": ({}, 8 * 513_626_880, [(4 * 513_626_880, "Adam keeps two"),
                                   (8 * 513_626_880 / 1e9, "in GB")]),
    "03.2": ({"precision": 0.9243, "recall": 0.9401}, 0.932, [(0.93, "significant digits"),
                                                             (0.85, "too low")]),
    "03.3": ({}, lambda total, trainable, size: size * (total + 3 * trainable),
             [(lambda total, trainable, size: 4 * (total + 3 * trainable), "16-bit"),
              (lambda total, trainable, size: size * 4 * total, "frozen encoder")]),
    "03.4": ({}, 6.16, [(8.22, "frozen weights stay"), (4.11, "gradient")]),
    "03.5": ({}, 25.7, [(51.4, "32-bit"), (25 * 2 * 513_626_880, "in bytes")]),
    "03.6": ({}, 8 * (33_472 + 455), [(33_472 + 455, "number of trained parameters"),
                                      (8 * 33_472, "NER head trains too")]),
    "04.1": ({}, 1_198_848, [(1_198_848 // 2, "one adapter per layer"), (1_179_648, "biases")]),
    "04.2": ({}, 96, [(48, "two projections"), (144, "GELU")]),
    "04.3": ({}, lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wd, bd)), wu, bu),
             [(lambda x, wd, bd, wu, bu: F.linear(F.gelu(F.linear(x, wd, bd)), wu, bu),
               "skip connection is missing")]),
    "04.5": ({}, 4 * (2 * 8 * 64 + 64 + 8), [(2 * (2 * 8 * 64 + 64 + 8), "two adapters in each layer"),
                                             (4 * 2 * 8 * 64, "biases")]),
    "04.4": ({}, 3, [(4, "m = 4 is too high: its adapter has 6,916 parameters"), (7, "two matrices"),
                     (2, "m = 2 is too low")]),
    "05.1": ({}, 6_291_456, [(4_194_304, "the count at r = 8"),
                             (12_582_912, "all four attention matrices")]),
    "05.2": ({}, "neither", [("A", "which matrix does it contain as a factor")]),
    "05.3": ({"update": UPDATE}, 1, [(3, "rank of the update"), (16, "too high")]),
    "05.4": ({}, _lora, [(lambda x, W0, b, A, B, alpha: (F.linear(x, W0, b) + alpha * x @ A.T @ B.T,
                                                          W0 + alpha * B @ A), "scaled by α; LoRA scales it by α/r"),
                         (lambda x, W0, b, A, B, alpha: (_lora(x, W0, b, A, B, alpha)[0], W0),
                          "merged weight is wrong")]),
    "05.5": ({}, 2.25, [(1.5, "count how many times α enters it"), (1, "not divided by the gradient's size")]),
    "06.1": ({}, 6 * 2 * 8 * (384 + 1536),
             [(331_776, "every linear layer"), (147_456, "four attention matrices"),
              (73_728, "not 384 x 384"), (92_160, "count both factors"), (30_720, "one encoder layer")]),
    "06.2": ({}, 2 * 4 * (6 * 2 * 16 * 768), [(147_456, "two 4-byte numbers"),
                                              (2 * 147_456, "takes 4 bytes"),
                                              (4 * 147_456, "r = 8 instead of this question's r = 16"),
                                              (12 * 147_456, "adds the gradients"),
                                              (8 * (147_456 + 1155), "leave the head out"),
                                              (599_064, "section 8's measured state")]),
    "06.3": ({}, _align, [(lambda ids, labels: [-100 if i is None else labels[i] for i in ids],
                           "token 2 should get -100"),
                          (lambda ids, labels: [labels[0]] * len(ids), "token 0 should get -100")]),
    "06.4": ({}, 55_296, [(110_592, "that is r = 8"), (36_864, "key is a third target"),
                          (73_728, "section 7's count"), (8 * 55_296, "adds no parameters"),
                          (27_648, "count both"), (9_216, "one encoder layer"),
                          (55_296 + 1155, "PEFT wraps the encoder only")]),
    "07.1": ({}, 0.042, [(0.17, "divides it by min"), (0.0026, "one direction of each"), (0.5, "too high")]),
    "07.2": ({}, 3584, [(1792, "one layer's count"), (3072, "r (128 + 64)"), (2, "looks like a rank")]),
    "08.1": ({}, 6.71, [(6.5, "constant"), (7.31, "without double quantisation"), (6.7, "significant")]),
    "08.2": ({}, 7680, [(6 * 2 * 384, "lambda_d"), (3840, "two adapted"), (2_359_296, "LoRA's count")]),
    "08.3": ({}, _quantise_blocks, [(_one_absmax, "one absmax for the whole tensor"),
                                    (_last_block_dropped, "the last block is shorter"),
                                    (_signed_max, "largest absolute value"),
                                    (_not_scaled, "divide each block by its absmax first"),
                                    (lambda w, levels, size: (torch.zeros(len(w)),
                                                              _quantise_blocks(w, levels, size)[1]),
                                     "largest difference")]),
    "08.4": ({}, 15.2, [(0.152, "fraction of absmax"), (6.67, "evenly spaced"), (6.25, "evenly spaced"),
                        (30.4, "half a gap"), (13.9, "the negative side has one level fewer"),
                        (27.7, "widest gap on the positive side"), (15.0, "3 significant digits")]),
    "09.1": ({}, LAYERS_09 * LORA_LAYER_09, [(LAYERS_09 * 7 * 8 * 2 * D_09, "not all 576 x 576"),
                                            (LORA_LAYER_09, "that is one layer"),
                                            (LAYERS_09 * LORA_LAYER_09 // 2, "count both factors")]),
    "09.2": ({}, _answer_labels, [(_labels_slip("padding labelled"), "the padding positions still have labels"),
                                  (_labels_slip("prompt labelled"), "the prompt's tokens still have labels"),
                                  (_labels_slip("shifted"), "you shifted the labels by one")]),
    "09.3": ({}, 23.6, [(70.8, "9 key/value heads"), (0.786, "that is one layer"), (22.0, "too low")]),
    "07.3": ({}, _phi, [(lambda U, V: (U.T @ V) ** 2, "each pair's own"),
                        (lambda U, V: (U.T @ V) ** 2 @ np.ones((V.shape[1], 1)), "shape")]),
}


def test_every_exercise_is_tested_here_and_has_a_kind():
    assert set(CASES) == set(exercises.EXERCISES)
    assert {e.kind for e in exercises.EXERCISES.values()} == set(exercises.KINDS)


NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_notebook_has_a_coding_and_a_predict_then_measure_exercise(path):
    """Write the mechanism; and predict a quantity, then see it measured by an ordinary cell
    (kept in the student copy) after the solution."""
    ours = {i: e for i, e in exercises.EXERCISES.items() if i.startswith(path.name[:2] + ".")}
    assert any(e.kind == "coding" for e in ours.values())
    predictions = [i for i, e in ours.items() if e.question.startswith("predict")]
    assert predictions
    cells = json.loads(path.read_text())["cells"]
    tags = [set(c.get("metadata", {}).get("tags", [])) for c in cells]
    for exercise_id in predictions:
        asked = next(n for n, c in enumerate(cells) if "exercise" in tags[n]
                     and f'exercises.check("{exercise_id}"' in "".join(c["source"]))
        assert "solution" in tags[asked + 1]
        measured = cells[asked + 2]
        assert measured["cell_type"] == "code" and not tags[asked + 2] & {"exercise", "solution"}, (
            f"{exercise_id}: the cell after its solution should measure the prediction")


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
        "01.6": [lambda *a: float(solution(*a)), lambda *a: np.int64(solution(*a)),
                 lambda *a: torch.tensor(solution(*a))],
        "02.4": [lambda M, r: list(_svd(M, r)), lambda M, r: tuple(torch.from_numpy(m) for m in _svd(M, r))],
        "03.3": [lambda *a: float(solution(*a)), lambda *a: torch.tensor(solution(*a)),
                 lambda *a: np.int64(solution(*a))],
        "04.3": [lambda *a: solution(*a).numpy(), lambda *a: solution(*a).tolist()],
        "05.4": [lambda *a: list(solution(*a)), lambda *a: _as_numpy(solution(*a))],
        "06.3": [lambda *a: tuple(solution(*a)), lambda *a: (label for label in solution(*a)),
                 lambda *a: [np.int64(label) if isinstance(label, int) else label for label in solution(*a)]],
        "07.3": [lambda U, V: torch.from_numpy(solution(U, V)), lambda U, V: solution(U, V).tolist()],
        "08.3": [lambda *a: list(solution(*a)), lambda *a: (solution(*a)[0].tolist(), solution(*a)[1].tolist()),
                 lambda *a: (solution(*a)[0].float(), solution(*a)[1].numpy())],
        "09.2": [_answer_labels_in_a_loop, lambda *a: solution(*a).tolist(), lambda *a: solution(*a).numpy(),
                 lambda *a: solution(*a).float(), lambda *a: solution(*a).to(torch.int32)],
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


# --- 05: LoRA (issue 25): each named slip gets its own hint; no ratio; equivalent answers ------

def _feedback(exercise_id, answer, **context):
    feedback = exercises.check(exercise_id, answer, **context)
    assert not feedback.correct, (answer, feedback.message)
    assert not re.search(r"\d×|right value", feedback.message), feedback.message   # never the ratio
    return feedback.message


@pytest.mark.parametrize(("answer", "words"), [
    (32 * 2 * 8 * 8192, "the count at r = 8 (notebook 02's table)"),   # the table's row, copied
    (32 * 2 * 16 * 8192, "the count at r = 16"),
    (32 * 1 * 12 * 8192, "the count for W_q alone"),                      # one target matrix, not two
    (32 * 2 * 12 * 4096, "or for B or A alone"),                    # only B (or only A)
    (32 * 4 * 12 * 8192, "all four attention matrices"),
    (32 * 2 * 4096 * 4096, "frozen d × d matrices W_q and W_v themselves"),   # dense
    (32 * 2 * (4096 * 4096 + 12 * 8192), "frozen d × d matrices are not trained"),
    (32 * 2 * 12 * 4096 * 4096, "r × d × k multiplies the sizes"),
    (2 * 12 * 8192, "that is one layer"),
])
def test_05_1_names_each_slip(answer, words):
    message = _feedback("05.1", answer)
    assert words in message and "6,291,456" not in message, message
    assert ("too low" in message) == (answer < 6_291_456), message


def test_05_1_accepts_the_count_however_written():
    for answer in (6_291_456, 6_291_456.0, np.int64(6_291_456), torch.tensor(6_291_456)):
        assert exercises.check("05.1", answer).correct


def test_05_2_asks_for_a_string_and_no_wrong_option_gives_the_answer_away():
    assert "which matrix does it contain as a factor" in _feedback("05.2", "A")
    assert "it contains the factor Ax" in _feedback("05.2", "B")
    assert "look at the factor each one contains" in _feedback("05.2", "both")
    for wrong in ("A", "B", "both"):
        assert "neither" not in _feedback("05.2", wrong).lower()
    assert "answer with" in _feedback("05.2", ["neither"]).lower()


def test_05_3_names_the_rank_the_plain_sum_and_the_index_from_zero():
    # UPDATE: singular values 10, 3, 1. 90% of 110 needs 1 direction; of Σσ = 14, 2 directions
    assert "rank of the update" in _feedback("05.3", 3, update=UPDATE)
    assert "Σσᵢ²" in _feedback("05.3", 2, update=UPDATE)
    sigma = np.array([5.0, 4.0, 3.0, 1.0, 0.5])   # energy 25, 41, 50, 51, 51.25 of 51.25: 3 directions
    update = _ORTHO[:, :5] @ np.diag(sigma) @ _ORTHO[:, 5:10].T
    assert exercises.check("05.3", 3, update=update).correct
    assert "counts from 0" in _feedback("05.3", 2, update=update)
    assert "one direction past" in _feedback("05.3", 4, update=update)


def _lora_with(scaling=lambda alpha, r, k: alpha / r, bias=True, transposed=False, merged_scaling=None,
               merged_transposed=False, with_W0=True, order=(0, 1), container=tuple):
    """A LoRA function with one slip made on purpose."""
    merged_scaling = merged_scaling or scaling

    def my_lora(x, W0, b, A, B, alpha):
        r, k = A.shape
        update = x @ (B @ A) if transposed else x @ A.T @ B.T
        output = x @ W0.T + (b if bias else 0) + scaling(alpha, r, k) * update
        BA = (B @ A).T if merged_transposed else B @ A
        merged = (W0 if with_W0 else 0) + merged_scaling(alpha, r, k) * BA
        pair = (output, merged)
        return container([pair[i] for i in order])
    return my_lora


@pytest.mark.parametrize(("function", "words"), [
    (_lora_with(scaling=lambda alpha, r, k: 1.0), "both wrong: the update is not scaled"),
    (_lora_with(scaling=lambda alpha, r, k: alpha), "both wrong: the update is scaled by α; LoRA scales it by α/r"),
    (_lora_with(scaling=lambda alpha, r, k: alpha / k), "r is its number of rows"),
    (_lora_with(transposed=True, merged_transposed=True), "x (B A)ᵀ = x Aᵀ Bᵀ"),
    (_lora_with(merged_transposed=True), "you added (B A)ᵀ"),
    (_lora_with(bias=False), "the bias b is missing"),
    (_lora_with(merged_scaling=lambda alpha, r, k: 1.0), "output is right, but the merged weight is wrong: "
                                                         "the update is not scaled"),
    (_lora_with(merged_scaling=lambda alpha, r, k: alpha), "merged weight is wrong: the update is scaled by α"),
    (_lora_with(with_W0=False), "the update alone"),
    (_lora_with(order=(1, 0)), "merged weight first"),
    (_lora_with(order=(0,)), "you returned 1 thing"),
    (lambda *a: _lora(*a)[0], "you returned the output only"),
    (lambda *a: (*_lora(*a), None), "you returned 3 things"),
])
def test_05_4_names_each_slip(function, words):
    message = _feedback("05.4", function)
    assert words in message, message


def test_05_4_takes_two_things_in_a_list_a_tuple_or_arrays():
    # issue 25 reported [output, merged] told to "return two things"; a list of two is right
    for container in (list, tuple, lambda pair: np.array([p.numpy() for p in pair], dtype=object)):
        assert exercises.check("05.4", _lora_with(container=container)).correct
    assert exercises.check("05.4", lambda *a: [t.numpy() for t in _lora(*a)]).correct
    assert exercises.check("05.4", lambda *a: [t.double().tolist() for t in _lora(*a)]).correct


@pytest.mark.parametrize(("answer", "words"), [
    (1.5, "count how many times α enters it"),      # B's step only
    (1, "not divided by the gradient's size"),      # Adam's answer
    (3.375, "A gets no gradient at the first step"),
    (2, "not from 8 to 16"),
    (4, "the factor for doubling α"),
    (0.444, "from α = 12 back to α = 8"),
])
def test_05_5_names_each_slip_at_the_asked_precision(answer, words):
    message = _feedback("05.5", answer)
    assert words in message and "2.25" not in message, message


def test_05_5_accepts_the_factor_however_written():
    for answer in (2.25, 9 / 4, np.float32(2.25), torch.tensor(2.25), sympy.Rational(9, 4), "x"[:0] or 2.250):
        assert exercises.check("05.5", answer).correct


# --- Notebook 01 (issue 25): the coding and the predict-then-measure exercise, slip by slip ---

def _singular_values_of(M):
    return np.linalg.svd(M, compute_uv=False)


NUMERICAL_RANK_SLIPS = [   # (a student's numerical_rank, words its feedback must contain)
    (lambda M, tol: int(np.sum(_singular_values_of(M) >= tol)), "(> rather than >=)"),
    (lambda M, tol: int(np.sum(_singular_values_of(M) > tol * _singular_values_of(M)[0])),
     "tol is an absolute bound"),
    (lambda M, tol: int(np.sum(_singular_values_of(M) >= tol * _singular_values_of(M).max(initial=0))),
     "tol is an absolute bound"),
    (lambda M, tol: np.linalg.matrix_rank(M), "ignored tol"),
    (lambda M, tol: int(np.sum(np.linalg.eigvals(M).real > tol)), "you counted eigenvalues"),
    (lambda M, tol: min(M.shape), "you returned min(d, k)"),
]


@pytest.mark.parametrize("student, words", NUMERICAL_RANK_SLIPS)
def test_01_6_names_each_slip(student, words):
    feedback = exercises.check("01.6", student)
    assert not feedback.correct and words in feedback.message, feedback.message
    assert feedback.message.startswith("Not yet. On ")   # and says on which case


def test_01_6_a_slip_nobody_named_still_gets_the_case_and_the_expected_rank():
    feedback = exercises.check("01.6", lambda M, tol: int(np.sum(_singular_values_of(M) > tol)) + 1)
    assert not feedback.correct and "the numerical rank is 1." in feedback.message
    assert "It looks as if" not in feedback.message


def test_01_6_an_unfinished_function_is_not_answered_and_a_string_is_no_rank():
    assert exercises.check("01.6", lambda M, tol: None).message.startswith("Not answered yet")
    feedback = exercises.check("01.6", lambda M, tol: "2")
    assert not feedback.correct and "return the rank, a whole number" in feedback.message


def test_01_6_accepts_numpys_matrix_rank_given_the_tolerance():
    assert exercises.check("01.6", lambda M, tol: np.linalg.matrix_rank(M, tol=tol)).correct


@pytest.mark.parametrize("prediction, words", [
    (5, "min(7, 5) bounds every 7×5 matrix"), (6, "ranks do not add"),
    (7, "can never reach max(7, 5)"), (2, "ask what bounds the rank of A·B"), (0, "ask what bounds the rank")])
def test_01_7_names_each_slip_without_the_answer(prediction, words):
    feedback = exercises.check("01.7", prediction, A=A_01_7, B=B_01_7)
    assert not feedback.correct and words in feedback.message, feedback.message
    assert "rank 3" not in feedback.message and "is 3" not in feedback.message


@pytest.mark.parametrize("prediction", [3, 3.0, np.int64(3), torch.tensor(3)])
def test_01_7_takes_the_right_prediction_in_any_form(prediction):
    assert exercises.check("01.7", prediction, A=A_01_7, B=B_01_7).correct


def test_01_7_is_judged_against_the_matrices_it_is_given():
    assert linalg.exact_rank(A_01_7) == linalg.exact_rank(B_01_7) == 3
    thin = np.ones((7, 1)) @ np.ones((1, 3))   # a rank-1 A: then A·B has rank 1
    assert exercises.check("01.7", 1, A=thin, B=B_01_7).correct
    assert not exercises.check("01.7", 3, A=thin, B=B_01_7).correct


def test_01_3_question_does_not_name_the_pivot_columns():
    assert "C1" not in exercises.EXERCISES["01.3"].question
    assert "C3" not in exercises.EXERCISES["01.3"].question


def test_01_5_asks_for_room_in_the_gap_and_the_notebooks_tolerance_has_it():
    for edge, words in [(3.05, "right under σ2"), (2e-6, "right above σ3")]:
        feedback = exercises.check("01.5", edge, W_noisy=W_NOISY)
        assert not feedback.correct and words in feedback.message, feedback.message
    for tol in (1e-3, 1e-4, np.float64(1e-2), torch.tensor(1e-3)):
        assert exercises.check("01.5", tol, W_noisy=W_NOISY).correct


def test_01_4_says_the_repair_lowers_the_rank_from_4_to_3():
    assert linalg.exact_rank(sympy.Matrix(S)) == 4
    feedback = exercises.check("01.4", _repaired(), S=S)
    assert feedback.correct and "the rank drops from 4 to 3" in feedback.message


# --- notebook 02: each exercise's own slips (issue 25) ---------------------------------------

def _photo_like_spectrum():
    """Singular values that fall like a photo's: the slips of 02.3 give different ranks."""
    return 50.0 * 0.93 ** np.arange(200) + 0.2


@pytest.mark.parametrize("answer, words", [
    (16 * 1024, "you counted only B"), (16 * 4096, "you counted only A"),
    (1024 * 4096, "that is the dense matrix"), (1024 + 4096, "one column of B and one row of A"),
    (16 * 1024 * 4096, "you multiplied r, d and k"), (16 * 16 * (1024 + 4096), "multiplied by r twice"),
    (81_921, "too high")])
def test_02_1_names_its_own_slips(answer, words):
    feedback = exercises.check("02.1", answer)
    assert not feedback.correct and words in feedback.message, feedback.message
    assert "range" not in feedback.message   # no generic off-by-one: this is a product, not a range


@pytest.mark.parametrize("answer, words", [
    (384, "d/2 is the rule for a square matrix"), (1536, "k/2 is not it"),
    (768, "largest rank a 768 × 3072 matrix"), (1228.8, "r(d + k)/2 = dk"), (1920, "average of d and k")])
def test_02_2_names_its_own_slips(answer, words):
    feedback = exercises.check("02.2", answer)
    assert not feedback.correct and words in feedback.message, feedback.message


def test_02_3_names_its_own_slips():
    from lora_teach import lowrank
    sigma = _photo_like_spectrum()
    raw = np.concatenate([[400.0], sigma[1:]])   # a first direction that holds most of the energy
    expected = lowrank.rank_for_energy(sigma, 0.90)
    by_sigma = int(np.argmax(np.cumsum(sigma) / np.sum(sigma) >= 0.90)) + 1
    slips = {expected - 1: "np.argmax", by_sigma: "the sum of the squares",
             lowrank.rank_for_energy(sigma, 0.80): "rank for 80%",
             lowrank.rank_for_energy(sigma, 0.99): "rank for 99%",
             lowrank.rank_for_energy(raw, 0.90): "the raw photo's rank"}
    assert len(set(slips) | {expected}) == 6   # the five slips are told apart
    context = {"singular_values": sigma, "raw_singular_values": raw}
    assert exercises.check("02.3", expected, **context).correct
    assert exercises.check("02.3", float(expected), **context).correct
    for answer, words in slips.items():
        feedback = exercises.check("02.3", answer, **context)
        assert not feedback.correct and words in feedback.message, (answer, feedback.message)


def _approximation(M, r):
    u, s, vt = np.linalg.svd(M, full_matrices=False)
    return (u[:, :r] * s[:r]) @ vt[:r]


@pytest.mark.parametrize("slip, words", [
    (lambda M, r: (_approximation(M, r), np.eye(M.shape[1])),
     "B should be 6 × r with r = 2 columns; yours has 4 (the whole d × k product"),
    (lambda M, r: (np.eye(M.shape[0]), _approximation(M, r)),
     "B should be 6 × r with r = 2 columns; yours has 6 (a d × d matrix"),
    (lambda M, r: _svd(M, r)[::-1], "you returned (A, B)"),
    (lambda M, r: _svd(M, r + 1), "B should be 6 × r with r = 2 columns; yours has 3"),
    (lambda M, r: (_svd(M, r)[0], _svd(M, r + 1)[1]), "A should be r × 4 with r = 2 rows; yours has 3"),
    (lambda M, r: (np.linalg.svd(M, full_matrices=False)[0][:, :r], np.linalg.svd(M, full_matrices=False)[2][:r]),
     "the singular values Σ_r are missing"),
    (lambda M, r: (_svd(M, r)[0], np.linalg.svd(M, full_matrices=False)[2].T[:r]), "Vt[:r]"),
    (lambda M, r: _approximation(M, r), "return two matrices, (B, A)")])
def test_02_4_requires_lora_shapes_and_names_the_slip(slip, words):
    feedback = exercises.check("02.4", slip)
    assert not feedback.correct and words in feedback.message, feedback.message


def test_02_4_accepts_any_split_of_the_singular_values():
    def balanced(M, r):
        u, s, vt = np.linalg.svd(M, full_matrices=False)
        return u[:, :r] * np.sqrt(s[:r]), np.sqrt(s[:r])[:, None] * vt[:r]
    assert exercises.check("02.4", balanced).correct
    def full_matrices(M, r):   # np.linalg.svd's default full_matrices=True, sliced right
        u, s, vt = np.linalg.svd(M)
        return u[:, :r], np.diag(s[:r]) @ vt[:r]
    assert exercises.check("02.4", full_matrices).correct


@pytest.mark.parametrize("answer, words", [
    (3.0, "σ₂ alone"), (10.0, "take its square root"), (4.0, "you added the discarded singular values"),
    (5.0, "σ₁ is the part the rank-1 approximation keeps"), (5.92, "that is ‖Q‖_F"),
    (0.535, "that is the relative error")])
def test_02_5_names_its_own_slips(answer, words):
    feedback = exercises.check("02.5", answer, Q=Q)
    assert not feedback.correct and words in feedback.message, feedback.message


def test_02_6_judges_the_prediction_against_the_update_given():
    for right in (27, 27.0, np.int64(27), torch.tensor(27)):
        assert exercises.check("02.6", right, update=UPDATE_02_6).correct
    for spectral in (9, 10):   # sigma_10 = sigma_1 / 10: either reading of "a tenth of sigma_1"
        assert "spectral-norm error" in exercises.check("02.6", spectral, update=UPDATE_02_6).message
    feedback = exercises.check("02.6", 5, update=UPDATE_02_6)
    assert "90% of the energy" in feedback.message and "square root" in feedback.message
    flat = np.diag(np.ones(10))   # all ten directions equal: 10% error needs 99% of them, all ten
    assert exercises.check("02.6", 10, update=flat).correct


# --- notebooks 03 and 04 (issue 25): each usual slip gets its own reason, never the ratio ---

M500 = 513_626_880          # the notes' 500M Model M (exercises 03.1, 03.4, 03.5)
LAYER, NER_HEAD = 33_472, 455   # one encoder layer of Model M; its NER head (exercise 03.6)
ADAPTER_8 = 2 * 8 * 64 + 64 + 8   # one adapter with m = 8 in Model M (exercise 04.5)

SLIPS_03_04 = [   # (exercise, a slip as a student would type it, words its message must hold)
    ("03.1", M500, "one number per parameter"),
    ("03.1", 2 * M500, "numbers are not bytes"),
    ("03.1", 4 * M500, "Adam keeps two"),
    ("03.1", 12 * M500, "adds the gradients"),
    ("03.1", 16 * M500, "weights, gradients and both moments"),
    ("03.1", 64 * M500, "bits"),
    ("03.1", 4_000_000_000, "500 million"),
    ("03.1", 8 * M500 / 1e9, "in GB"),
    # 03.4 and 03.5 ask for 3 significant digits: each slip typed that way
    ("03.4", 8.22, "frozen weights stay in memory"),
    ("03.4", 4.11, "the gradient (4 bytes per parameter) goes too"),
    ("03.4", 2.05, "Adam's two moments (8 bytes) go as well"),
    ("03.4", 6.00, "500 million"),
    ("03.4", 5.74, "GiB"),
    ("03.4", 6.16e9, "bytes"),
    ("03.5", 51.4, "32-bit"),
    ("03.5", 1.03, "one task's file"),
    ("03.5", 26.7, "a copy of the base"),
    ("03.5", 205, "bits"),
    ("03.5", 25.0, "500 million"),
    ("03.5", 23.9, "GiB"),
    ("03.6", LAYER + NER_HEAD, "number of trained parameters"),
    ("03.6", 2 * (LAYER + NER_HEAD), "numbers are not bytes"),
    ("03.6", 4 * (LAYER + NER_HEAD), "keeps two moments"),
    ("03.6", 12 * (LAYER + NER_HEAD), "adds the gradients"),
    ("03.6", 16 * (LAYER + NER_HEAD), "weights, gradients and moments"),
    ("03.6", 8 * (2 * LAYER + NER_HEAD), "both encoder layers"),
    ("03.6", 8 * LAYER, "NER head trains too"),
    ("03.6", 8 * (LAYER + NER_HEAD + 195), "FPB head gets no gradient"),
    ("03.6", 8 * NER_HEAD, "the head alone"),
    ("03.6", 8 * (LAYER - 256 + NER_HEAD), "LayerNorms train too"),
    ("04.1", 599_424, "one adapter per layer"),
    ("04.1", 49_952, "that is one adapter"),
    ("04.1", 1_179_648, "left out the biases"),
    ("04.1", 2_379_264, "the count for m = 64"),
    ("04.2", 48, "two projections"),
    ("04.2", 24, "one per layer"),
    ("04.2", 144, "GELU between the projections is no linear layer"),
    ("04.5", 2 * ADAPTER_8, "two adapters in each layer"),
    ("04.5", ADAPTER_8, "that is one adapter"),
    ("04.5", 4 * 2 * 8 * 64, "left out the biases"),
    ("04.5", 4 * ADAPTER_8 + 512, "LayerNorms"),
    ("04.5", 4 * ADAPTER_8 + 512 + 455, "LayerNorms and the NER head"),
    ("04.5", 4 * (2 * 8 * 128 + 128 + 8), "128 is the feed-forward"),
]


@pytest.mark.parametrize("exercise_id, answer, words", SLIPS_03_04)
def test_03_04_each_slip_gets_its_own_reason_and_no_ratio(exercise_id, answer, words):
    feedback = exercises.check(exercise_id, answer)
    assert not feedback.correct and words in feedback.message, feedback.message
    assert "×" not in feedback.message and "right value" not in feedback.message, feedback.message


def test_03_1_a_rounded_count_is_asked_for_exactly():
    feedback = exercises.check("03.1", 4.109e9)
    assert not feedback.correct and "exact whole number" in feedback.message, feedback.message


MEMORY_SLIPS = [   # exercise 03.3: a slip in training_memory(n_total, n_trainable, bytes_per_number)
    (lambda n, t, b: b * (n + 2 * t), "is the gradient or one moment missing"),   # no gradients
    (lambda n, t, b: b * (n + t + t), "is the gradient or one moment missing"),   # one moment
    (lambda n, t, b: b * 3 * t, "the weights are missing"),
    (lambda n, t, b: b * 4 * t, "the frozen ones stay in memory"),
    (lambda n, t, b: b * (n + t + 2 * n), "moments are counted for every parameter"),
    (lambda n, t, b: b * (2 * n + 2 * t), "gradients are counted for every parameter"),
    (lambda n, t, b: 4 * b * n, "gradients and moments are counted for every parameter"),
    (lambda n, t, b: b * (n + 4 * t), "counted twice"),
    (lambda n, t, b: 4 * (n + 3 * t), "use bytes_per_number"),
    (lambda n, t, b: b * (n + 3 * t) / 1e9, "returns GB"),
    (lambda n, t, b: b * (n + 3 * t) / 1e6, "returns MB"),
    (lambda n, t, b: b * (n + 3 * t) / 2 ** 30, "returns GiB"),
    (lambda n, t, b: 8 * b * (n + 3 * t), "returns bits"),
]


@pytest.mark.parametrize("slip, words", MEMORY_SLIPS)
def test_03_3_names_each_slip(slip, words):
    feedback = exercises.check("03.3", slip)
    assert not feedback.correct and words in feedback.message, feedback.message
    assert "×" not in feedback.message, feedback.message


def test_03_3_an_unnamed_mistake_says_too_high_without_a_ratio():
    feedback = exercises.check("03.3", lambda n, t, b: b * (n + 3 * t) + 1)
    assert not feedback.correct and "more than the" in feedback.message and "×" not in feedback.message


def _gelu_tanh(z):
    return F.gelu(z, approximate="tanh")


ADAPTER_SLIPS = [   # exercise 04.3: a slip in adapter(x, down_weight, down_bias, up_weight, up_bias)
    (lambda x, wd, bd, wu, bu: F.linear(F.gelu(F.linear(x, wd, bd)), wu, bu), "skip connection is missing"),
    (lambda x, wd, bd, wu, bu: x + _gelu_tanh(x @ wd.T + bd) @ wu.T + bu,
     "GELU's tanh approximation: use the exact GELU, F.gelu(x)"),
    (lambda x, wd, bd, wu, bu: x + torch.relu(x @ wd.T + bd) @ wu.T + bu, "that is ReLU"),
    (lambda x, wd, bd, wu, bu: x + (x @ wd.T + bd) @ wu.T + bu, "nonlinearity is missing"),
    (lambda x, wd, bd, wu, bu: x + F.linear(F.gelu(F.linear(x, wu, bu)), wd, bd), "projections are swapped"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd + bd) @ wu + bu, "weights are used untransposed"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd + bd) @ wu.T + bu, "down_weight is used untransposed"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd.T + bd) @ wu + bu, "up_weight is used untransposed"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd.T) @ wu.T + bu, "down_bias is missing"),
    (lambda x, wd, bd, wu, bu: x + F.gelu(x @ wd.T + bd) @ wu.T, "up_bias is missing"),
]


@pytest.mark.parametrize("slip, words", ADAPTER_SLIPS)
def test_04_3_names_each_slip(slip, words):
    feedback = exercises.check("04.3", slip)
    assert not feedback.correct and words in feedback.message, feedback.message


def test_04_3_a_mistake_only_a_bottleneck_shows_gets_a_difference_not_an_error():
    def only_square_right(x, wd, bd, wu, bu):
        out = x + F.linear(F.gelu(F.linear(x, wd, bd)), wu, bu)
        return out if wd.shape[0] == wd.shape[1] else out + 1
    feedback = exercises.check("04.3", only_square_right)
    assert not feedback.correct and "largest difference" in feedback.message, feedback.message


# --- slips found by reading 01-05 as a student (issue 25) ----------------------------------

def _last_r_svd(M, r):
    U, sigma, Vt = np.linalg.svd(M, full_matrices=False)
    return U[:, -r:] * sigma[-r:], Vt[-r:]


@pytest.mark.parametrize(("exercise_id", "answer", "words"), [
    ("02.4", _last_r_svd, "keeps the r smallest singular values"),
    ("03.3", lambda n_total, n_trainable, size: n_total + 3 * n_trainable, "counts numbers, not bytes"),
    ("03.5", 2.05, "one task's file in 32-bit numbers"),
    ("04.1", 99_904, "one layer's two adapters"),
    ("04.1", 590_592, "the down projection only"),
    ("04.1", 608_256, "the up projection only"),
])
def test_more_usual_slips_are_named(exercise_id, answer, words):
    assert words in _feedback(exercise_id, answer)


# --- Notebooks 06 and 08 (issue 25): the checkers' cases and answers match what the notebooks show ---

def test_06_3_cases_split_words_as_minilms_tokenizer_does():
    from transformers import AutoTokenizer

    from lora_teach import real_model
    real_model.quiet_hugging_face()
    tokenizer = AutoTokenizer.from_pretrained(str(real_model.find_model_folder()))
    assert tokenizer.tokenize("Ericsson shares rose") == ["eric", "##sson", "shares", "rose"]
    assert tokenizer.tokenize("Heineken") == ["he", "##ine", "##ken"]
    (_, (first, _)), (_, (second, _)) = exercises._alignment_cases()[:2]
    assert tokenizer(["Ericsson", "shares", "rose"], is_split_into_words=True).word_ids() == first
    assert tokenizer(["Heineken"], is_split_into_words=True).word_ids() == second


def test_08_4_is_half_the_widest_gap_of_nf4_whose_negative_side_has_one_level_fewer():
    from lora_teach import quantization
    levels = quantization.nf4_levels().double()
    assert ((levels < 0).sum(), (levels == 0).sum(), (levels > 0).sum()) == (7, 1, 8)
    grid = torch.linspace(-1, 1, 400_001, dtype=torch.float64)
    worst = (levels[(grid[:, None] - levels[None, :]).abs().argmin(1)] - grid).abs().max().item()
    assert exercises.check("08.4", 100 * worst).correct
    assert levels[1] - levels[0] > levels[-1] - levels[-2]   # the widest gap is the negative side's outermost


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
    "07.1": [(64 / 384, "||U_4^T V_16||_F^2 itself (φ divides it by min(i, j))"),
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


def test_05_4_names_a_merged_weight_left_unchanged():
    def unmerged(x, W0, b, A, B, alpha):
        return _lora(x, W0, b, A, B, alpha)[0], W0
    assert "that is W0 unchanged" in _feedback("05.4", unmerged)


def test_07_3_names_a_norm_left_unsquared():
    def unsquared(U, V):
        products = (U.T @ V) ** 2
        i = np.arange(1, U.shape[1] + 1)[:, None]
        j = np.arange(1, V.shape[1] + 1)[None, :]
        return np.sqrt(products.cumsum(0).cumsum(1)) / np.minimum(i, j)
    assert "φ uses its square" in _feedback("07.3", unsquared)


def test_07_1_names_section_3s_chance_level_and_06_2_both_of_its_halving_slips():
    assert "64-direction subspaces" in _feedback("07.1", 0.17)
    message = _feedback("06.2", 6 * 2 * 16 * 2 * 384 * 4)
    assert "one moment instead of two" in message and "r = 8 instead" in message


# --- Notebook 09: each named slip of 09.1, 09.2 and 09.3 gets its own message ------------------

NOTEBOOK_09_SLIPS = {
    "09.1": [(LAYERS_09 * 7 * 8 * 2 * D_09, "the layers are not all 576 x 576: k_proj and v_proj have 192 outputs"),
             (LAYERS_09 * 8 * (2 * D_09 + (D_09 + KV_09)), "that is r = 8 on q_proj and v_proj only"),
             (LAYERS_09 * (LORA_LAYER_09 - 2 * 8 * (D_09 + KV_09) + 2 * 8 * 2 * D_09),
              "k_proj and v_proj have 192 outputs (3 key/value heads of 64), not 576"),
             (LAYERS_09 * 8 * (2 * 2 * D_09 + 2 * (D_09 + KV_09)), "that is the four attention projections only"),
             (LORA_LAYER_09, "that is one layer; the model has 30"),
             (LAYERS_09 * sum(d_in * d_out for d_in, d_out in SHAPES_09.values()),
              "that is the size of the frozen weights themselves"),
             (LAYERS_09 * sum(8 * d_in * d_out for d_in, d_out in SHAPES_09.values()),
              "r x d_in x d_out multiplies the sizes"),
             (LAYERS_09 * LORA_LAYER_09 // 2, "count both factors, A (r x d_in) and B (d_out x r)")],
    "09.2": [(_labels_slip("padding labelled"), "the padding positions still have labels"),
             (_labels_slip("prompt labelled"), "the prompt's tokens still have labels"),
             (_labels_slip("early"), "your answer starts one position early"),
             (_labels_slip("late"), "your answer starts one position late"),
             (_labels_slip("shifted"), "you shifted the labels by one"),
             (_labels_slip("padding by its id"), "you found the padding by its id"),
             (_labels_slip("nothing masked"), "the prompt's tokens still have labels"),
             (_labels_slip("one column short"), "return labels of the inputs' shape (1, 6), not (1, 5)"),
             (_labels_slip("off by one somewhere"), "the largest difference from the expected values is 26"),
             (lambda input_ids, prompt_lengths, lengths: "labels", "return a tensor of labels")],
    # typed to the 3 significant digits asked for, as a student would
    "09.3": [(round(KV_CACHE_09 * 3 / 1e6, 1), "that counts 9 key/value heads"),       # 9 heads of 64
             (round(KV_CACHE_09 * 3 / 1e6, 1), "that uses d = 576 for keys and values"),   # the same number
             (round(KV_CACHE_09 / 2e6, 2), "the cache holds keys and values: two tensors per layer"),
             (round(KV_CACHE_09 / 2e6, 2), "float32 takes 4 bytes per number"),        # the same number
             (round(KV_CACHE_09 / 30e6, 3), "that is one layer; each of the 30 layers keeps its own"),
             (KV_CACHE_09, "looks like it is in bytes"),
             (round(KV_CACHE_09 / 2 ** 20, 2), "looks like it is in MiB")],
}


@pytest.mark.parametrize("exercise_id", sorted(NOTEBOOK_09_SLIPS))
def test_09_each_named_slip_gets_its_own_message_without_the_answer(exercise_id):
    for answer, words in NOTEBOOK_09_SLIPS[exercise_id]:
        feedback = exercises.check(exercise_id, answer)
        assert not feedback.correct and words in feedback.message, (answer, feedback.message)
        assert not re.search(r"\d×|right value", feedback.message), feedback.message   # never the ratio
        assert "2,442,240" not in feedback.message and "23.6" not in feedback.message, feedback.message


def test_09_every_slip_a_checker_knows_is_tested_above(monkeypatch):
    """A slip added to a 09 checker needs its line in NOTEBOOK_09_SLIPS: the checkers' own
    lists are read (09.1 and 09.3 hand theirs to _hints; 09.2's reference returns them)."""
    known = {}
    hints = exercises._hints

    def record(expected, slips):
        known[current] = [why for _, why in slips]
        return hints(expected, slips)
    monkeypatch.setattr(exercises, "_hints", record)
    for current in ("09.1", "09.3"):
        exercises.check(current, 1)
    known["09.2"] = list(exercises._reference_labels(*exercises._mask_cases()[1][1])[1])
    assert [len(known[i]) for i in ("09.1", "09.2", "09.3")] == [8, 6, 5]
    for exercise_id, reasons in known.items():
        for why in reasons:
            assert any(words in why for _, words in NOTEBOOK_09_SLIPS[exercise_id]), (exercise_id, why)


def test_09_1_and_09_3_are_the_counts_of_smollm2s_shapes():
    assert exercises.SMOLLM2 == {"layers": LAYERS_09, "d": D_09, "kv": KV_09, "ffn": FFN_09}
    assert exercises.check("09.1", 2_442_240).correct and LAYERS_09 * LORA_LAYER_09 == 2_442_240
    for right in (23.6, 23.593, 23.59296, np.float32(23.6), torch.tensor(23.6)):
        assert exercises.check("09.3", right).correct, right
    for near, words in ((23.4, "within 5%"), (24, "significant digits")):
        feedback = exercises.check("09.3", near)
        assert not feedback.correct and words in feedback.message, feedback.message


def test_09_2_is_judged_on_rows_with_and_without_padding():
    descriptions = [description for description, _ in exercises._mask_cases()]
    assert "one row without padding" in descriptions and any("padded" in d for d in descriptions)
    # right on the row without padding, wrong once padding comes: the message says where
    feedback = exercises.check("09.2", _labels_slip("padding labelled"))
    assert feedback.message.startswith("Not yet. On three rows, two of them padded with id 2 (row 2's answer ends "
                                      "with <|im_end|>, also id 2): the padding")

