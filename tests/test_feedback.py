"""Tests for lora_teach.feedback: right answers pass, wrong ones get a specific reason."""

from fractions import Fraction

import numpy as np
import pytest
import sympy
import torch
from helpers import NOTES_W

from lora_teach import feedback, linalg


def test_unanswered_exercise_says_so():
    for verdict in (feedback.check_rank(None, NOTES_W),
                    feedback.judge_number(None, 3, "answer"),
                    feedback.check_tolerance(None, NOTES_W, 2)):
        assert not verdict.correct and "Not answered yet" in repr(verdict)


def test_check_rank_explains_each_kind_of_mistake():
    assert feedback.check_rank(3, NOTES_W).correct
    too_high = feedback.check_rank(4, NOTES_W)
    assert not too_high and "Too high" in too_high.message
    assert "C1" not in too_high.message   # which columns depend is another exercise's answer
    assert feedback.check_rank(3, NOTES_W).message == "Correct. The rank is 3: 3 of the 5 columns are independent."
    assert "Too low" in feedback.check_rank(2, NOTES_W).message
    assert "min(4, 5) = 4" in feedback.check_rank(5, NOTES_W).message
    assert "whole number" in feedback.check_rank(2.5, NOTES_W).message


def test_check_column_numbers_detects_counting_from_zero():
    assert feedback.check_column_numbers([1, 2, 3], [0, 1, 2]).correct
    assert "counted from 0" in feedback.check_column_numbers([0, 1, 2], [0, 1, 2]).message
    message = feedback.check_column_numbers([1, 2, 4], [0, 1, 2]).message
    assert "leaves out a column" in message and "includes a column that is a combination" in message
    assert "3" not in message and "4" not in message   # the columns themselves are the answer


def test_check_combination_names_broken_rows():
    assert feedback.check_combination([1, 1], NOTES_W, target=3, using=[0, 1]).correct
    wrong = feedback.check_combination([2, 0], NOTES_W, target=2, using=[0, 1])
    assert not wrong and "row(s) [3, 4]" in wrong.message
    assert "list of 2" in feedback.check_combination([1], NOTES_W, 3, [0, 1]).message


def test_judge_number_says_direction():
    assert feedback.judge_number(18, 18, "answer").correct
    assert "too high" in feedback.judge_number(20, 18, "answer").message
    assert "is text, not a number: remove the quotes" in feedback.judge_number("18", 18, "answer").message


def test_check_tolerance_points_at_the_singular_value_on_the_wrong_side():
    corrected = np.array([[1, 7], [2, 10], [3, 15], [4, 12]]) @ np.array(
        [[1, 0, 2, 1, 1], [0, 1, 0, 1, 2]])
    noisy = corrected + 1e-9 * np.random.default_rng(0).standard_normal(corrected.shape)
    assert feedback.check_tolerance(1e-6, noisy, 2).correct
    assert "Too small" in feedback.check_tolerance(1e-12, noisy, 2).message
    sigma2 = linalg.singular_values(noisy)[1]
    assert "Too large" in feedback.check_tolerance(sigma2 * 2, noisy, 2).message


def test_check_tolerance_wants_room_on_both_sides_of_the_gap():
    rank_2 = np.array([[1, 7], [2, 10], [3, 15], [4, 12]]) @ np.array([[1, 0, 2, 1, 1], [0, 1, 0, 1, 2]])
    noisy = rank_2 + 1e-9 * np.random.default_rng(0).standard_normal((4, 5))
    sigma = linalg.singular_values(noisy)
    at_the_edge = feedback.check_tolerance(0.99 * sigma[1], noisy, 2)     # rank 2, but only just
    assert not at_the_edge.correct and f"right under σ2 = {sigma[1]:.3g}" in at_the_edge.message
    above_noise = feedback.check_tolerance(1.01 * sigma[2], noisy, 2)
    assert not above_noise.correct and "right above σ3" in above_noise.message
    assert feedback.check_tolerance(1e-3, noisy, 2).correct


def test_check_combination_prints_a_float_slip_as_a_decimal():
    message = feedback.check_combination([0.1, 1], NOTES_W, target=3, using=[0, 1]).message
    assert "fails in row(s)" in message and "/" not in message.split("differ by")[1]
    thirds = feedback.check_combination([sympy.Rational(1, 3), 1], NOTES_W, target=3, using=[0, 1]).message
    assert "2/3" in thirds.split("differ by")[1]


def test_check_column_numbers_reads_as_a_sentence():
    assert feedback.check_column_numbers([1, 2], [0, 2]).message == (
        "Not yet. Your list of pivot columns: it includes a column that is a combination of the "
        "columns before it, and it leaves out a column that is not a combination of the columns "
        "before it.")
    assert feedback.check_column_numbers([1, 2, 3], [0, 2]).message == (
        "Not yet. Your list of pivot columns: it includes a column that is a combination of the "
        "columns before it.")


def test_check_relation_repair_counts_the_fewest_changes():
    repaired = [row[:] for row in NOTES_W]
    repaired[2][2], repaired[3][2] = 6, 8          # C3 = 2·C1 in rows 3 and 4
    verdict = feedback.check_relation_repair(repaired, NOTES_W, 2, {0: 2, 1: 0})
    assert verdict.correct and "the fewest possible" in verdict.message
    assert "the rank stays 3" in verdict.message    # NOTES_W had rank 3 before the repair too
    wasteful = [row[:] for row in repaired]
    wasteful[0][0], wasteful[0][2] = 5, 10          # row 1 changed too, though it already held
    assert "2 are enough" in feedback.check_relation_repair(wasteful, NOTES_W, 2, {0: 2, 1: 0}).message
    half = [row[:] for row in NOTES_W]
    half[2][2] = 6
    assert "still fails in row(s) [4]" in feedback.check_relation_repair(half, NOTES_W, 2, {0: 2, 1: 0}).message


def test_judge_choice_explains_each_option():
    options = {"NER": "because it lost more", "FPB": "it lost less"}
    assert feedback.judge_choice("NER", "NER", options).message == "Correct. Because it lost more."
    assert feedback.judge_choice("FPB", "NER", options).message == "Not yet. Not 'FPB'. It lost less."
    assert feedback.judge_choice(" ner ", "NER", options).correct      # any capitalisation and spacing
    assert "one of ['NER', 'FPB']; you gave 'POS'" in feedback.judge_choice("POS", "NER", options).message
    as_list = feedback.judge_choice(["NER"], "NER", options).message
    assert "as a string, e.g. 'FPB'; you gave a list" in as_list   # the example is never the answer
    with pytest.raises(ValueError, match="not among the options"):
        feedback.judge_choice("NER", "POS", options)


@pytest.mark.parametrize("answer, message", [
    (4_109_015_040, "Correct. The state is 4,109,015,040 bytes."),
    (4_109_015_040 / 1e9, "looks like it is in GB"),
    (4_109_015_040 / 2 ** 30, "looks like it is in GiB"),
    (4_109_015_040 / 1e6, "looks like it is in MB"),
    (2 * 4_109_015_040, "Your state 8,218,030,080 is too high."),      # no ratio: no hint given
    (4_109_015_041, "Your state 4,109,015,041 is too high."),
    (4.109e9, "looks rounded. Give the exact whole number"),
    (4.1e9, "looks rounded. Give the exact whole number"),
    (4.12e9, "Your state 4,120,000,000 is too high."),     # not the answer rounded: just too high
    (4e9, "Your state 4,000,000,000 is too low."),         # one digit is a guess, not a rounding
    ("4109015040", "'4109015040' is text, not a number: remove the quotes"),
    ("four billion", "it should be a number, not text ('four billion')"),
    (4_109_015_040.5, "whole number"),
    (3e9, "too low"),
    (torch.tensor([4_109_015_040]), "one number inside a Tensor of shape (1,); take the number out with .item()"),
])
def test_judge_number_names_the_usual_slips(answer, message):
    verdict = feedback.judge_number(answer, 4_109_015_040, "state", unit="bytes", integer=True)
    assert message in verdict.message


def test_judge_number_never_gives_the_ratio_to_the_answer():
    hints = {0.5: "one moment instead of two"}
    for answer in (2 * 4_109_015_040, 4_109_015_040 / 2, 0.2 * 4_109_015_040, 123):
        message = feedback.judge_number(answer, 4_109_015_040, "state", integer=True, hints=hints).message
        assert "×" not in message and "the right value" not in message, message
    half = feedback.judge_number(4_109_015_040 / 2, 4_109_015_040, "state", integer=True, hints=hints)
    assert half.message == "Not yet. Your state 2,054,507,520 is too low: one moment instead of two."


def test_judge_number_accepts_a_whole_number_in_any_form():
    for form in (2, 2.0, np.int64(2), np.float32(2.0), torch.tensor(2), torch.tensor(2.0), sympy.Integer(2)):
        assert feedback.judge_number(form, 2, "rank", integer=True).correct, form


def test_a_hint_matches_a_slip_typed_at_the_precision_asked():
    expected, slip = 10 ** 0.5, 10 ** 0.5 * 4 / 3   # a slip of 4/3 typed as 4.22 (4.216...)
    hints = {4 / 3: "that counts the gradient too"}
    assert "gradient" in feedback.judge_number(4.22, expected, "memory", significant=3, hints=hints).message
    assert "gradient" in feedback.judge_number(round(slip, 2), expected, "memory", significant=3, hints=hints).message
    assert "gradient" not in feedback.judge_number(4.3, expected, "memory", significant=3, hints=hints).message


@pytest.mark.parametrize("answer, message", [
    (3.16, "Correct"), (3.162, "Correct"), (3.2, "asks for 3 significant digits: 3.2 has fewer"),
    (3.17, "within 5% but not right to 3 significant digits"), (316.2, "too high."),
    (0.0316, "too low."), (1.0, "too low"),
])
def test_judge_number_wants_the_precision_it_asks_for(answer, message):
    assert message in feedback.judge_number(answer, 10 ** 0.5, "error", significant=3).message


def test_judge_function_names_the_failing_case():
    cases = [("two", (2,)), ("minus three", (-3,))]
    square = lambda x: x * x   # noqa: E731
    compare = lambda expected, got: None if expected == got else f"expected {expected}, got {got}"   # noqa: E731
    assert feedback.judge_function(square, cases, square, compare, "f").correct
    wrong = feedback.judge_function(lambda x: x * abs(x), cases, square, compare, "f")
    assert wrong.message == "Not yet. On minus three: expected 9, got -9."
    crash = feedback.judge_function(lambda x: x / 0, cases, square, compare, "f")
    assert "On two, your function raised ZeroDivisionError" in crash.message
    assert "Define a function" in feedback.judge_function(4, cases, square, compare, "f").message


def test_compare_arrays_recognises_a_transpose():
    assert "transpose" in feedback.compare_arrays(np.zeros((2, 3)), np.zeros((3, 2)))
    assert feedback.compare_arrays(np.ones((2, 3)), np.ones((2, 3))) is None


# --- checkers never raise on a student's answer (regressions from issue 9) -----------------

WEIRD_ANSWERS = [float("nan"), float("inf"), -float("inf"), 2 + 1j, "three", [1, 2.5], {"a": 1},
                 object(), np.array([0.5, 2.0]), np.float64("nan"),
                 10 ** 400, -10 ** 400, Fraction(10 ** 400, 3), {1, 5}, [[1, 2], [3]], torch.ones(2, 3),
                 torch.tensor([True]), torch.tensor(1 + 2j), lambda: 1 / 0]


@pytest.mark.parametrize("answer", WEIRD_ANSWERS, ids=[f"answer{i}" for i in range(len(WEIRD_ANSWERS))])
def test_no_checker_raises_on_any_answer(answer):
    calls = [
        lambda a: feedback.judge_choice(a, "NER", {"NER": "it lost more", "FPB": "it lost less"}),
        lambda a: feedback.check_rank(a, NOTES_W),
        lambda a: feedback.check_column_numbers(a, [0, 1]),
        lambda a: feedback.check_combination(a, NOTES_W, target=3, using=[0, 1]),
        lambda a: feedback.check_combination([a, 1], NOTES_W, target=3, using=[0, 1]),
        lambda a: feedback.judge_number(a, 3, "answer"),
        lambda a: feedback.check_tolerance(a, NOTES_W, 2),
        lambda a: feedback.check_relation_repair(a, NOTES_W, 2, {0: 2, 1: 0}),
        lambda a: feedback.judge_number(sympy.Symbol("x") if isinstance(a, str) else a, 3, "answer"),
    ]
    for call in calls:
        verdict = call(answer)
        assert isinstance(verdict, feedback.Feedback) and not verdict.correct
        assert verdict.message.startswith("Not yet.") and verdict.message.rstrip().endswith(".")


@pytest.mark.parametrize("answer", [3, 3.0, np.int64(3), np.float32(3), __import__("fractions").Fraction(3, 1)])
def test_numbers_of_any_type_are_understood(answer):
    assert feedback.judge_number(answer, 3, "answer").correct
    assert feedback.judge_number(sympy.Rational(6, 2), 3, "answer").correct
    assert feedback.judge_number(sympy.sqrt(9), 3, "answer").correct


def test_complex_with_zero_imaginary_part_is_a_real_number():
    assert feedback.judge_number(3 + 0j, 3, "answer").correct


def test_a_repeated_column_gets_a_sentence_not_an_empty_list():
    # regression: "Your list of pivot columns is ." when only a repeat was wrong
    message = feedback.check_column_numbers([1, 1, 2], [0, 1]).message
    assert "more than once" in message and " is ." not in message


def test_a_wrongly_set_up_exercise_still_raises_for_the_author():
    with pytest.raises(feedback.ExerciseSetupError):
        feedback.judge_choice("A", "C", {"A": "the first", "B": "the second"})


# --- issue 22: no answer raises, a right answer counts in any form, no function fools the judge ---

def test_a_huge_number_or_an_unhashable_choice_is_feedback():
    # regressions: judge_number(10**400) raised OverflowError, judge_choice([...]) TypeError
    assert "far too large" in feedback.judge_number(10 ** 400, 3, "answer").message
    for answer in (["NER"], {"NER": 1}, np.array(["NER"])):
        verdict = feedback.judge_choice(answer, "NER", {"NER": "it lost more", "FPB": "it lost less"})
        assert not verdict and "one of ['NER', 'FPB']" in verdict.message


@pytest.mark.parametrize("form", [3.0, np.int64(3), np.float32(3), np.array(3), torch.tensor(3), torch.tensor(3.0),
                                  sympy.Integer(3)])
def test_a_whole_number_may_be_written_in_any_form(form):
    assert feedback.check_rank(form, NOTES_W).correct
    assert feedback.judge_number(form, 3, "answer", integer=True).correct
    assert feedback.check_column_numbers([1, 2, form], [0, 1, 2]).correct


@pytest.mark.parametrize("form", [np.array([1, 2, 3]), {1, 2, 3}, (1, 2, 3), [1.0, 2.0, 3.0], torch.tensor([1, 2, 3]),
                                  sympy.Matrix([1, 2, 3])])
def test_column_numbers_may_be_written_in_any_form(form):
    assert feedback.check_column_numbers(form, [0, 1, 2]).correct


@pytest.mark.parametrize("form", [np.array([1, 1]), (1, 1), torch.tensor([1.0, 1.0]), sympy.Matrix([[1, 1]]),
                                  [torch.tensor(1), np.float64(1)]])
def test_coefficients_may_be_written_in_any_ordered_form(form):
    assert feedback.check_combination(form, NOTES_W, target=3, using=[0, 1]).correct


def test_a_repaired_matrix_may_be_a_tensor():
    repaired = [row[:] for row in NOTES_W]
    repaired[2][2], repaired[3][2] = 6, 8
    assert feedback.check_relation_repair(torch.tensor(repaired), NOTES_W, 2, {0: 2, 1: 0}).correct


def _sum_of_squares_cases():
    return [("three ones", (np.ones(3),)), ("the list [1, 2]", ([1.0, 2.0],))]


def _sum_of_squares(v):
    return float(np.sum(np.square(v)))


def _compare(expected, got):
    return None if expected == got else f"expected {expected}, got {got}"


def test_judge_function_is_not_fooled_by_a_function_that_wipes_its_input():
    # regression: the reference ran after the student's function, on the same (wiped) input
    def wipe_then_compute(v):
        v[:] = [0] * len(v)
        return _sum_of_squares(v)
    verdict = feedback.judge_function(wipe_then_compute, _sum_of_squares_cases(), _sum_of_squares, _compare, "f")
    assert not verdict and "On three ones, your function changed its input v in place" in verdict.message


def test_judge_function_refuses_a_right_result_that_cost_the_callers_input():
    def compute_then_grow(v):
        result = _sum_of_squares(v)
        if isinstance(v, list):
            v.append(0.0)
        return result
    verdict = feedback.judge_function(compute_then_grow, _sum_of_squares_cases(), _sum_of_squares, _compare, "f")
    assert not verdict and "On the list [1, 2], your function changed its input v" in verdict.message
    assert feedback.judge_function(_sum_of_squares, _sum_of_squares_cases(), _sum_of_squares, _compare, "f")


def test_judge_function_turns_a_result_that_breaks_the_comparison_into_feedback():
    def breaks(expected, got):
        return None if got + 1 else "unreachable"   # a dict cannot be added to
    verdict = feedback.judge_function(lambda v: {}, _sum_of_squares_cases(), _sum_of_squares, breaks, "f")
    assert not verdict and "your result (dict) could not be compared" in verdict.message


@pytest.mark.parametrize("got", [torch.ones(2, 3, requires_grad=True), torch.ones(2, 3, dtype=torch.float16),
                                 [[1, 1, 1], [1, 1, 1]], np.ones((2, 3), dtype=np.float32)])
def test_compare_arrays_reads_arrays_of_any_kind(got):
    assert feedback.compare_arrays(np.ones((2, 3)), got) is None


@pytest.mark.parametrize("got", ["111", {"a": 1}, (x for x in range(3)), [[1, 2], [3]], torch.ones(3, dtype=torch.bool),
                                 np.array([1 + 2j]), [10 ** 400]])
def test_compare_arrays_says_what_is_no_array_of_numbers(got):
    assert "not an array of numbers" in feedback.compare_arrays(np.ones(3), got)
