"""No exercise's answer is printed or written anywhere before the exercise, in any notebook.

For each exercise whose checker needs no notebook objects, every number written in a cell or
printed in an output before the exercise (in its notebook and in the notebooks before it) is
given to the checker as an answer; the test fails if the checker accepts one. The checker
computes the answer itself, so nothing here is hard-coded. Whole numbers below 100 are left out:
they appear everywhere (a rank of 2, 12 layers) and say nothing about a particular answer, so
an answer like r = 2 given away in a sentence is for a reader to catch, not for this test.
(Coding exercises are answered by a function, and exercises about a notebook's own objects by
values this test cannot compute; neither is searched for.)
"""

import inspect
import json
import pathlib
import re

import pytest

from lora_teach import exercises

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NUMBER = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
CHECK = re.compile(r"exercises\.check\(\s*[\"'](\d\d\.\d+)[\"']")


def cell_text(cell) -> str:
    """What a reader sees of a cell: its source and the text of its outputs."""
    parts = ["".join(cell["source"])]
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        for kind in ("text/plain", "text/markdown", "text/html"):
            parts.append("".join(output.get("data", {}).get(kind, "")))
    return "\n".join(parts)


def numbers_in(text: str) -> set[float]:
    found = set()
    for match in NUMBER.findall(text):
        try:
            value = float(match.replace(",", ""))
        except ValueError:
            continue
        if not (value.is_integer() and abs(value) < 100):
            found.add(value)
    return found


def exercises_and_what_came_before():
    """(exercise id, where it is asked, the numbers shown before it) in course order."""
    seen: set[float] = set()
    asked = set()
    for path in NOTEBOOKS:
        for index, cell in enumerate(json.loads(path.read_text())["cells"]):
            for exercise_id in CHECK.findall("".join(cell["source"])):
                if exercise_id not in asked:
                    asked.add(exercise_id)
                    yield exercise_id, f"{path.name} cell {index}", frozenset(seen)
            seen |= numbers_in(cell_text(cell))


def answered_by_a_number(exercise_id: str) -> bool:
    """True for a reasoning or construction exercise that takes no notebook objects."""
    exercise = exercises.EXERCISES[exercise_id]
    return exercise.kind != "coding" and len(inspect.signature(exercise.judge).parameters) == 1


CASES = [case for case in exercises_and_what_came_before() if answered_by_a_number(case[0])]


def test_the_search_finds_every_exercise_answered_by_a_number():
    assert {exercise_id for exercise_id, _, _ in CASES} == set(filter(answered_by_a_number, exercises.EXERCISES))
    assert numbers_in("2,379,264 and 6.16 GB, 4.1e9, r = 2, 12 layers") == {2_379_264.0, 6.16, 4.1e9}


@pytest.mark.parametrize("exercise_id, where, shown", CASES, ids=[case[0] for case in CASES])
def test_no_answer_is_shown_before_its_exercise(exercise_id, where, shown):
    given_away = sorted(value for value in shown if exercises.check(exercise_id, value).correct)
    assert not given_away, f"exercise {exercise_id} ({where}) is answered by {given_away[:3]} shown before it"
