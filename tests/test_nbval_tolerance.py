"""Tests for the tolerance rule: close enough for trained numbers, exact for the rest."""

import os
import pathlib
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from tests.nbval_tolerance import (
    HELPER_SOURCE,
    Tolerance,
    check_source,
    parse_tolerance,
    split_at_numbers,
    texts_close,
    tolerance_of,
    with_margins,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_the_metadata_states_the_tolerance():
    assert tolerance_of({"nbval": {"tolerance": "abs=0.02 places=3"}}) == (0.02, 0.0, {3})
    assert parse_tolerance("abs=0.01 rel=0.05 places=2,3  (a reason, ignored: abs=9)") == (0.01, 0.05, {2, 3})
    assert tolerance_of({}) is None and tolerance_of({"nbval": {}}) is None and tolerance_of({"tags": ["x"]}) is None
    with pytest.raises(ValueError, match="needs abs"):
        parse_tolerance("places=3")
    with pytest.raises(ValueError, match="cannot read"):
        parse_tolerance("abs=0.02 places=3.5")
    with pytest.raises(ValueError, match="is a string"):
        tolerance_of({"nbval": {"tolerance": {"abs": 0.02}}})


def test_a_tolerance_without_places_is_an_error():
    with pytest.raises(ValueError, match=r"needs places=.*'abs=0.03  \(training\)'"):
        tolerance_of({"nbval": {"tolerance": "abs=0.03  (training)"}})


def test_a_tolerance_line_in_the_source_is_an_error():
    check_source("x = 1\nprint(x)  # no tolerance here")
    with pytest.raises(ValueError, match=r"'# NBVAL_TOLERANCE abs=0.02 places=3' in the cell's source is not read: "
                                         r".*\"nbval\": \{\"tolerance\": \"abs=0.02 places=3\"\}"):
        check_source("x = 1\n  # NBVAL_TOLERANCE abs=0.02 places=3\nprint(x)")


def test_decimals_with_the_stated_places_may_move_within_the_tolerance():
    three = Tolerance(0.02, 0.0, {3})
    assert texts_close("F1 0.932 +- 0.011", "F1 0.925 +- 0.013", three) is None
    assert "0.932 became 0.899, beyond the tolerance" in texts_close("F1 0.932", "F1 0.899", three)
    assert texts_close("sigma 1.0438", "sigma 1.0437", Tolerance(0.0, 1e-3, {4})) is None
    assert texts_close("loss 1.2e-03", "loss 1.3e-03", Tolerance(0.001, 0.0, {1})) is None
    assert texts_close("acc 0.75 F1 0.750", "acc 0.78 F1 0.780", Tolerance(0.05, 0.0, {2, 3})) is None


def test_settings_compare_exactly():
    tolerance = parse_tolerance("abs=0.05 places=3")
    stored = "chosen: 0.01; validation accuracy 0.750"
    assert texts_close(stored, "chosen: 0.01; validation accuracy 0.780", tolerance) is None
    assert "0.01 became 0.001" in texts_close(stored, "chosen: 0.001; validation accuracy 0.750", tolerance)
    assert "3e-04 became 4e-04" in texts_close("lr 3e-04 F1 0.812", "lr 4e-04 F1 0.812", tolerance)
    # the same number printed with other places (as :g prints it) is not covered either
    assert "0.750 became 0.75" in texts_close("score 0.750", "score 0.75", tolerance)


def test_names_are_text():
    assert split_at_numbers("layers.0 W_2 x1 v0.21 (64, 64) 0.41") == [
        "layers.0 W_2 x1 v0.21 (", "64", ", ", "64", ") ", "0.41", ""]
    assert split_at_numbers("steps 1-20: -0.5, +0.048, 4,551, 1.2e-03") == [
        "steps ", "1", "-", "20", ": ", "-0.5", ", ", "+0.048", ", ", "4,551", ", ", "1.2e-03", ""]
    wide = Tolerance(2.0, 0.1, {0, 2})    # would let 0.41 become 2.20
    problem = texts_close("layers.0.attention.W_q ratio 0.41", "layers.1.attention.W_q ratio 2.20", wide)
    assert problem == "the text differs: 'layers.0.attention.W_q ratio ' != 'layers.1.attention.W_q ratio '"


def test_places_0_lets_integers_move_and_keeps_the_other_decimals_exact():
    ranks = parse_tolerance("abs=2 places=0  (ranks of trained updates)")
    assert texts_close("rank 37 of 64, size 0.412", "rank 38 of 64, size 0.412", ranks) is None
    assert "37 became 40, beyond the tolerance" in texts_close("rank 37", "rank 40", ranks)
    assert "0.412 became 0.413, but only the numbers covered by abs=2 rel=0 places=0" in \
        texts_close("rank 37 of 64, size 0.412", "rank 37 of 64, size 0.413", ranks)
    three = Tolerance(0.5, 0.5, {3})        # without places=0, integers are exact
    assert "4,551 became 4,552" in texts_close("trainable 4,551", "trainable 4,552", three)


def test_words_and_the_count_of_numbers_must_match():
    tolerance = Tolerance(0.5, 0.5, {0, 1, 2, 3})
    assert "text differs" in texts_close("LoRA wins", "LoRA ties", tolerance)
    assert "different numbers of numbers" in texts_close("a 1.0", "a 1.0 2.0", tolerance)
    assert texts_close("C4 = 1·C1 + 1·C2", "C4 = 1·C1 + 1·C2", Tolerance(0.0, 0.0, {0})) is None


# --- margins of asserts ---

TOLERANCE = "abs=0.03 places=3"


def run_cell(source, tolerance=TOLERANCE, **variables):
    """Run a cell as nbval now runs it (rewritten by with_margins), with the given variables defined."""
    exec(compile(with_margins(source, parse_tolerance(tolerance)), "<cell>", "exec"), dict(variables, np=np))


def test_an_assert_needs_a_margin_wider_than_the_tolerance():
    with pytest.raises(AssertionError, match=r"x < 0.02: 0 < 0.02 is True, but .* move by 0.03 together"):
        run_cell("assert x < 0.02, 'LoRA and adapters: level'", x=0.0)
    run_cell("assert x < 0.1", x=0.0)
    run_cell("assert a < b", a=0.80, b=0.87)      # both measured: 0.06 in all, 0.07 apart
    with pytest.raises(AssertionError, match="a < b: 0.8 < 0.85 is True"):
        run_cell("assert a < b", a=0.80, b=0.85)
    with pytest.raises(AssertionError, match="^too large$"):    # a plain failure is the assert's own
        run_cell("assert x < 0.1, 'too large'", x=0.5)


def test_margins_inside_chains_and_not_and_generators():
    chained = "assert 0.5 < x < 1"
    run_cell(chained, x=0.7)
    with pytest.raises(AssertionError, match="^$"):    # false at its first comparison, as Python's chain
        run_cell(chained, x=0.1)
    with pytest.raises(AssertionError, match="0.5 < x < 1: 0.5 < 0.52 is True"):
        run_cell(chained, x=0.52)
    with pytest.raises(AssertionError, match="0.5 < x < 1: 0.98 < 1 is True"):
        run_cell(chained, x=0.98)
    both = "assert x > 0.5 and y < 0.2"
    run_cell(both, x=0.9, y=0.1)
    with pytest.raises(AssertionError, match="y < 0.2: 0.19 < 0.2"):
        run_cell(both, x=0.9, y=0.19)
    with pytest.raises(AssertionError, match="x > 0.5: 0.48 > 0.5 is False"):   # not: it must stay False
        run_cell("assert not x > 0.5", x=0.48)
    with pytest.raises(AssertionError, match="v < 1: 0.99 < 1"):
        run_cell("assert all(v < 1 for v in values)", values=[0.5, 0.99])
    rank = "assert rank < 40"    # ints are real numbers too
    run_cell(rank, "rel=0.1 places=0", rank=30)
    with pytest.raises(AssertionError, match="rank < 40: 37 < 40 is True"):
        run_cell(rank, "rel=0.1 places=0", rank=37)


def test_comparisons_of_other_values_are_left_as_they_are():
    run_cell("assert (x < 0.02).all() and 'a' < 'b' and flag < 1.01", x=np.zeros(3), flag=True)
    with pytest.raises(AssertionError):
        run_cell("assert (x < 0.02).all()", x=np.ones(3))
    equal = "assert x == 0.0 and x != 1 and len(s) == 3"
    assert with_margins(equal, parse_tolerance(TOLERANCE)) == equal


def test_the_rewrite_only_touches_asserts_with_orderings():
    source = "x = 0.0\nif x < 0.02:\n    print(f'{x:.3f}')\nx"
    assert with_margins(source, parse_tolerance(TOLERANCE)) == source
    cell = "x = 0.0\nassert (x <\n        0.1), (\n    'message')  # why\nprint(x)\n"
    rewritten = with_margins(cell, parse_tolerance(TOLERANCE))
    assert rewritten.startswith(HELPER_SOURCE.split("%")[0]) and HELPER_SOURCE.count("\n") == 24   # as documented
    lines, cell_lines = rewritten.split("\n")[HELPER_SOURCE.count("\n"):], cell.split("\n")
    assert len(lines) == len(cell_lines) and lines[:1] == cell_lines[:1] and lines[-2:] == cell_lines[-2:]
    assert "_nbval_margin((x, 0.1), ('<',), (False, True), 'x < 0.1')" in lines[1]
    magic = "%time y = 1\nassert x < 0.1"                   # IPython syntax is rewritten too
    assert "_nbval_margin((x, 0.1)" in with_margins(magic, parse_tolerance(TOLERANCE))


def test_nbval_reports_margins_places_and_settings(tmp_path):
    """End to end: pytest with nbval and this plugin on a small notebook."""
    def cell(source, output=None, tolerance=TOLERANCE, tags=()):
        outputs = [] if output is None else [nbformat.v4.new_output("stream", name="stdout", text=output)]
        metadata = {"tags": list(tags)} if tags else {}
        if tolerance:
            metadata["nbval"] = {"tolerance": tolerance}
        return nbformat.v4.new_code_cell(source, execution_count=1, outputs=outputs, metadata=metadata)

    measured = "score = 0.0\nprint(f'lr 0.01 score {score:.3f}')\n"
    notebook = nbformat.v4.new_notebook(cells=[
        cell(measured + "assert score < 0.1", "lr 0.01 score 0.020\n"),            # within the tolerance
        cell("assert score < 0.02, 'level'", tags=["guard"]),                       # too small a margin
        cell("print(1)", "1\n", tolerance="abs=0.03"),                              # no places=
        cell("print(f'lr 0.001 score {score:.3f}')", "lr 0.01 score 0.000\n"),      # a setting changed
        cell("assert score < 0.1\nscore / 0"),                                      # a real error
        cell("# NBVAL_TOLERANCE abs=0.03 places=3\nprint(2)", "2\n", tolerance=None),   # the old marker
        cell("assert score < 0.02", tolerance=None),                                # no tolerance: as written
        cell("print(f'score {score + 0.01:.3f}')", "score 0.000\n", tolerance=None,
             tags=["nbval-ignore-output"]),                                          # nbval's own tag
    ])
    nbformat.write(notebook, tmp_path / "small.ipynb")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.nbval_tolerance", "-p", "no:cacheprovider",
                          "--nbval", "--nbval-current-env", "-rA", "small.ipynb"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    report = run.stdout + run.stderr
    for number, outcome in enumerate(["PASSED", "FAILED", "FAILED", "FAILED", "FAILED", "FAILED", "PASSED", "PASSED"]):
        assert f"{outcome} small.ipynb::Cell {number}" in report, report
    assert "score < 0.02: 0 < 0.02 is True, but its sides are only 0.02 apart" in report
    assert "Cell 2: nbval tolerance needs places=" in report
    assert "Cell 5: '# NBVAL_TOLERANCE abs=0.03 places=3' in the cell's source is not read" in report
    assert "0.01 became 0.001, but only the numbers covered by abs=0.03 rel=0 places=3 may differ" in report
    assert "ZeroDivisionError" in report
    assert "Input:\n\x1b[0massert score < 0.02, 'level'\n" in report
    assert "def _nbval_margin" not in report    # the report shows the cell's own source
