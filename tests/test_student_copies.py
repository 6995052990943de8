"""`make student` copies: no solution, no guard cell, no stored answer, no test harness, every exercise there."""

import json
import pathlib
import re

import nbformat
import pytest

from lora_teach import site

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def student_copy(path):
    """What `make student` writes for ``path``."""
    return site.student_copy(path)


def test_make_student_writes_the_package_s_student_copies(tmp_path):
    recipe = (ROOT / "Makefile").read_text().split("\nstudent:", 1)[1].split("\n\n", 1)[0]
    assert "-m lora_teach.site student" in recipe
    written = site.write_student_copies(tmp_path, NOTEBOOKS[:1])
    assert written == [tmp_path / NOTEBOOKS[0].name]
    assert nbformat.read(written[0], as_version=4) == site.student_copy(NOTEBOOKS[0])


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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_student_copy_holds_no_guard_cell_and_no_test_harness(path):
    """Asserts that only guard stored results (tag ``guard``) and nbval's markers are for the
    tests, not the students: the copy has neither, and keeps every other code cell."""
    original = nbformat.read(path, as_version=4).cells
    copy = student_copy(path)
    guards = [c for c in original if "guard" in c.metadata.get("tags", [])]
    assert guards, "guard asserts sit in cells tagged 'guard'"
    assert not any("guard" in c.metadata.get("tags", []) for c in copy.cells)
    assert len(copy.cells) == len(original) - len(guards) - sum(
        "solution" in c.metadata.get("tags", []) for c in original)
    text = "\n".join(cell.source for cell in copy.cells)
    assert not re.search(r"NBVAL|nbval", text)


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
    removed = [bool({"solution", "guard"} & set(cell.get("metadata", {}).get("tags", []))) for cell in cells]
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
