"""`make student` copies: no solution cell, no stored answer, every exercise still there."""

import json
import pathlib
import re

import nbformat
import pytest
from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def student_copy(path):
    """What `make student` writes for ``path`` (the same two nbconvert preprocessors)."""
    notebook = nbformat.read(path, as_version=4)
    resources = {}
    remove = TagRemovePreprocessor(enabled=True, remove_cell_tags=["solution"])
    notebook, resources = remove.preprocess(notebook, resources)
    notebook, _ = ClearOutputPreprocessor(enabled=True).preprocess(notebook, resources)
    return notebook


def test_make_student_uses_these_preprocessors():
    recipe = (ROOT / "Makefile").read_text().split("\nstudent:", 1)[1].split("\n\n", 1)[0]
    assert "--TagRemovePreprocessor.remove_cell_tags='[\"solution\"]'" in recipe
    assert "--ClearOutputPreprocessor.enabled=True" in recipe


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_student_copy_holds_no_solution_and_no_answer(path):
    original = json.loads(path.read_text())["cells"]
    copy = student_copy(path)
    tags = [set(cell.get("metadata", {}).get("tags", [])) for cell in copy.cells]
    assert not any("solution" in t for t in tags)
    assert all(not cell.get("outputs") for cell in copy.cells if cell.cell_type == "code")
    exercise_cells = [cell for cell, t in zip(copy.cells, tags) if "exercise" in t]
    assert len(exercise_cells) == sum("exercise" in c.get("metadata", {}).get("tags", [])
                                      for c in original) > 0
    for cell in exercise_cells:
        # the student's cell starts unanswered: a None to replace, or a function body to write
        assert re.search(r"=\s*None\b|return None", cell.source), cell.source[:80]
    solutions = ["".join(c["source"]) for c in original
                 if "solution" in c.get("metadata", {}).get("tags", [])]
    text = "\n".join(cell.source for cell in copy.cells)
    for solution in solutions:
        assert solution not in text
    assert "Correct." not in text


def test_a_student_copy_runs_from_top_to_bottom(tmp_path):
    """Exercise cells hold None or an empty function: the checker answers "Not answered yet",
    so a student copy runs through, exercises included (notebook 01, the quickest)."""
    from nbclient import NotebookClient

    copy = student_copy(NOTEBOOKS[0])
    NotebookClient(copy, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    answers = [output.get("data", {}).get("text/plain", "") for cell in copy.cells
               if "exercise" in cell.get("metadata", {}).get("tags", [])
               for output in cell.get("outputs", [])]
    errors = [o for c in copy.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors and answers and all(a.startswith("Not answered yet") for a in answers)


POINTERS = re.compile(r"\bthe (next|following) cell\b|\bthe cell (below|after (it|this))\b", re.IGNORECASE)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_student_copy_never_points_at_a_removed_cell(path):
    """A student copy never mentions solutions (they are gone), and a cell that points at "the
    next cell" is followed, in the instructors' notebook, by a cell the copy keeps."""
    cells = nbformat.read(path, as_version=4).cells
    removed = ["solution" in cell.get("metadata", {}).get("tags", []) for cell in cells]
    for index, cell in enumerate(cells):
        if removed[index]:
            continue
        assert not re.search(r"\bsolution", cell.source, re.IGNORECASE), (
            f"cell {index} mentions a solution, which the student copy does not have: "
            f"{cell.source[:120]!r}")
        if POINTERS.search(cell.source) and index + 1 < len(cells):
            assert not removed[index + 1], (
                f"cell {index} points at the next cell, which the student copy removes: "
                f"{cell.source[:120]!r}")
