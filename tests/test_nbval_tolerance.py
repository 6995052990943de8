"""Tests for the NBVAL_TOLERANCE rule: close enough for trained numbers, exact for the rest."""

import pytest

from tests.nbval_tolerance import texts_close, tolerance_of


def test_the_marker_states_the_tolerance():
    assert tolerance_of("x = 1\n# NBVAL_TOLERANCE abs=0.02\nprint(x)") == (0.02, 0.0)
    assert tolerance_of("# NBVAL_TOLERANCE abs=0.01 rel=0.05") == (0.01, 0.05)
    assert tolerance_of("print(1)") is None
    with pytest.raises(ValueError, match="needs abs"):
        tolerance_of("# NBVAL_TOLERANCE")


def test_decimals_may_move_within_the_tolerance():
    tolerance = (0.02, 0.0)
    assert texts_close("F1 0.932 +- 0.011", "F1 0.925 +- 0.013", tolerance) is None
    assert "0.932 became 0.899" in texts_close("F1 0.932", "F1 0.899", tolerance)
    assert texts_close("sigma 1.0438", "sigma 1.04379", (0.0, 1e-3)) is None
    assert texts_close("loss 1.2e-03", "loss 1.3e-03", (0.001, 0.0)) is None


def test_integers_and_words_must_match_exactly():
    tolerance = (0.5, 0.5)
    assert "integer 4,551 became 4,552" in texts_close("trainable 4,551", "trainable 4,552", tolerance)
    assert "text differs" in texts_close("LoRA wins", "LoRA ties", tolerance)
    assert "different numbers of numbers" in texts_close("a 1.0", "a 1.0 2.0", tolerance)
    assert texts_close("C4 = 1·C1 + 1·C2", "C4 = 1·C1 + 1·C2", (0.0, 0.0)) is None
