"""Checks on the committed notebooks themselves (nbval checks their outputs separately).

These are the rules that keep stored outputs trustworthy and student copies usable:
executed top to bottom, no stored errors/warnings/machine paths, every exercise followed by
its solution, and the course map in the README listing every notebook.
"""

import ast
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
def test_every_tolerance_says_which_numbers_it_covers(path):
    from tests.nbval_tolerance import tolerance_of
    for number, cell in enumerate(code_cells(path)):
        try:
            tolerance_of(cell.get("metadata", {}))   # raises if places= (or abs/rel) is missing
        except ValueError as problem:
            raise AssertionError(f"code cell {number}: {problem}") from None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_test_harness_in_the_code_students_read(path):
    # nbval's settings live in the cells' metadata: tag nbval-ignore-output, nbval.tolerance
    for number, cell in enumerate(code_cells(path)):
        hit = re.search(r"NBVAL_\w*", "".join(cell["source"]))
        assert hit is None, f"code cell {number} has {hit.group(0)} in its source: put it in the cell's metadata"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_guard_cells_hold_asserts_only(path):
    """A cell tagged ``guard`` is left out of student copies, slides and the site: it may hold
    asserts (and comments) only, prints nothing, and is a plain code cell of the instructors' notebook."""
    guards = [cell for cell in code_cells(path) if "guard" in cell.get("metadata", {}).get("tags", [])]
    for cell in guards:
        source = "".join(cell["source"])
        assert all(isinstance(node, ast.Assert) for node in ast.parse(source).body), source[:200]
        assert not cell["outputs"], source[:200]
        assert not {"exercise", "solution"} & set(cell["metadata"]["tags"])
        assert cell["metadata"].get("slideshow", {}).get("slide_type") in ("-", "skip")


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_exactly_as_jupyter_saves_it(path):
    """nbformat's normal form (what JupyterLab, nbconvert --inplace and nbformat.write store:
    indent 1, sorted keys, non-ASCII kept, a final newline), format 4.5 with cell ids, so that
    opening and saving a notebook changes nothing in git."""
    import nbformat
    stored = path.read_bytes()
    notebook = nbformat.read(path, as_version=4)
    assert (notebook.nbformat, notebook.nbformat_minor) == (4, 5)
    assert all("id" in cell for cell in notebook.cells)
    assert stored == (nbformat.writes(notebook) + "\n").encode("utf-8"), "write it with nbformat.write"


def test_notebooks_name_the_installed_kernel():
    """The kernelspec JupyterLab would store: the installed python3 kernel's display name."""
    from jupyter_client.kernelspec import KernelSpecManager
    spec = KernelSpecManager().get_kernel_spec("python3")
    for path in NOTEBOOKS:
        kernelspec = json.loads(path.read_text())["metadata"]["kernelspec"]
        expected = {"display_name": spec.display_name, "language": spec.language, "name": "python3"}
        assert kernelspec == expected, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_figures_are_stored_sharp_and_fit_the_column(path):
    """Every stored picture is a retina image: twice the pixels of the size it is shown at (its
    width and height in the output's metadata), and shown no wider than the notebook's column.
    Plots are palette PNGs, photographs JPEGs (plotting.figure_image), nothing else."""
    import base64
    import io

    from PIL import Image

    from lora_teach.plotting import MAX_WIDTH_PX, PNG_COLORS
    images = 0
    for number, cell in enumerate(code_cells(path)):
        for output in cell.get("outputs", []):
            kinds = {"image/png", "image/jpeg"} & set(output.get("data", {}))
            assert len(kinds) <= 1 and not {"image/svg+xml", "application/pdf"} & set(output.get("data", {}))
            if not kinds:
                continue
            mime, = kinds
            images += 1
            picture = Image.open(io.BytesIO(base64.b64decode(output["data"][mime])))
            assert picture.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[mime]
            if mime == "image/png":
                assert picture.mode == "P" and len(picture.getcolors(PNG_COLORS)) <= PNG_COLORS, \
                    f"code cell {number}: a PNG in mode {picture.mode}, not a palette of {PNG_COLORS} colours"
            pixels_wide, pixels_high = picture.size
            shown = output.get("metadata", {}).get(mime, {})
            assert "width" in shown and "height" in shown, f"code cell {number}: a figure without its display size"
            assert shown["width"] <= MAX_WIDTH_PX, f"code cell {number}: shown {shown['width']} px wide"
            assert (pixels_wide, pixels_high) in {(2 * shown["width"] + e, 2 * shown["height"] + f)
                                                  for e in (0, 1) for f in (0, 1)}, \
                f"code cell {number}: {pixels_wide}x{pixels_high} pixels shown at {shown['width']}x{shown['height']}"
    assert images or path.name.startswith("00"), "every notebook shows pictures"
