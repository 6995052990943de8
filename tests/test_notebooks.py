"""Checks on the committed notebooks themselves (nbval checks their outputs separately).

These are the rules that keep stored outputs trustworthy and student copies usable:
executed top to bottom, no stored errors/warnings/machine paths, every exercise followed by
its solution, and the course map in the README listing every notebook.
"""

import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MACHINE_SPECIFIC = re.compile(r"(/tmp/|/root/|/home/\w+|/work/|/Users/|0x[0-9a-fA-F]{8,})")


def code_cells(path):
    cells = json.loads(path.read_text())["cells"]
    return [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def output_text(output):
    return "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_in_order_from_top(path):
    counts = [cell["execution_count"] for cell in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_errors_warnings_or_machine_paths_in_outputs(path):
    for index, cell in enumerate(code_cells(path)):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"cell {index} stores an error"
            text = output_text(output)
            assert not (output.get("name") == "stderr" and "warn" in text.lower()), \
                f"cell {index} stores a warning: {text[:100]}"
            assert not MACHINE_SPECIFIC.search(text), f"cell {index}: machine-specific output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_relies_on_a_trailing_semicolon(path):
    # nbval runs cells without storing history, and IPython then ignores a trailing ';',
    # so the suppressed output reappears under test. End plotting cells with plt.show().
    for index, cell in enumerate(code_cells(path)):
        assert not "".join(cell["source"]).rstrip().endswith(";"), f"cell {index} ends with ';'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_has_a_solution_right_after_it(path):
    cells = code_cells(path)
    tags = [set(cell.get("metadata", {}).get("tags", [])) for cell in cells]
    exercises = [i for i, t in enumerate(tags) if "exercise" in t]
    assert exercises, "every notebook ends with exercises"
    for i in exercises:
        assert i + 1 < len(cells) and "solution" in tags[i + 1], f"exercise cell {i} lacks a solution"
        answer = "".join(cells[i]["outputs"][0].get("data", {}).get("text/plain", ""))
        solved = "".join(cells[i + 1]["outputs"][-1].get("data", {}).get("text/plain", ""))
        assert answer.startswith("Not answered yet"), f"exercise cell {i} should start unanswered"
        assert solved.startswith("Correct."), f"solution cell {i + 1} is not marked correct"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_states_objectives_time_and_summary(path):
    cells = json.loads(path.read_text())["cells"]
    first = "".join(cells[0]["source"])
    markdown = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    assert "You will learn" in first and "Prerequisites" in first and "Time:" in first
    assert "## Summary" in markdown and "## " in markdown and "Exercise" in markdown


def test_readme_course_map_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert path.name in readme, f"{path.name} missing from the README's course map"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_tolerance_marker_says_which_numbers_it_covers(path):
    from tests.nbval_tolerance import MARKER, tolerance_of
    markers = 0
    for cell in code_cells(path):
        source = "".join(cell["source"])
        if MARKER.search(source):
            markers += 1
            tolerance_of(source)   # raises, naming the marker, if places= (or abs/rel) is missing
    assert markers == sum("NBVAL_TOLERANCE" in "".join(c["source"]) for c in code_cells(path))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_cell_deals_with_processes_futures_or_threads(path):
    # the run layer (lora_teach.experiments.run_all) does that; notebooks read top to bottom
    forbidden = re.compile(r"\.submit\(|\.result\(\)|concurrent\.futures|set_num_threads|multiprocessing|"
                           r"threading|start_workers|ProcessPool")
    for number, cell in enumerate(code_cells(path)):
        hit = forbidden.search("".join(cell["source"]))
        assert hit is None, f"code cell {number} uses {hit.group(0)!r}"


def test_the_course_map_run_times_keep_the_time_budget():
    # each notebook at most 120 s under nbval on the 2-core machine, the whole course at most 12 minutes
    readme = (ROOT / "README.md").read_text()
    times = {name: int(seconds) for name, seconds in
             re.findall(r"^\| \[`(\d\d_\w+)\.ipynb`\].*\| (\d+) s \|$", readme, re.MULTILINE)}
    assert set(times) == {path.stem for path in NOTEBOOKS}, "every notebook's measured run time is in the README"
    assert max(times.values()) <= 120 and sum(times.values()) <= 12 * 60, times


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_stand_alone_on_their_line(path):
    # nbval reads "# NBVAL_IGNORE_OUTPUT" only when it is the whole comment: a reason goes on the next line
    for number, cell in enumerate(code_cells(path)):
        for line in "".join(cell["source"]).splitlines():
            found = re.match(r"\s*#\s*(NBVAL_(?:IGNORE_OUTPUT|SKIP|CHECK_OUTPUT|RAISES_EXCEPTION))\b(.*)", line)
            assert found is None or not found.group(2).strip(), f"code cell {number}: {line.strip()!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_header_gives_the_course_maps_reading_and_run_times(path):
    readme = (ROOT / "README.md").read_text()
    row = re.search(rf"^\| \[`{path.stem}\.ipynb`\].*\| (\d+) min \| (\d+) s \|$", readme, re.MULTILINE)
    header = "".join(json.loads(path.read_text())["cells"][0]["source"])
    assert f"about {row[1]} minutes to read" in header
    assert f"the code runs in about {row[2]} seconds" in header


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_widget_state_is_stored(path):
    """Stored widget state makes nbconvert's pages load the widget manager from unpkg.com: the
    site and slides would reach the web. The stored picture is the figure; sliders need a kernel."""
    assert "widgets" not in json.loads(path.read_text())["metadata"]


def test_make_execute_stores_no_widget_state():
    assert "--ExecutePreprocessor.store_widget_state=False" in (ROOT / "Makefile").read_text()
