"""nbval, plus one rule: numbers from float training are compared within a stated tolerance.

A cell whose source has a line such as

    # NBVAL_TOLERANCE abs=0.03 places=3  (results of training: the last digits differ between CPUs)

is compared as nbval compares every cell, except that when the fresh outputs differ from the
stored ones, they are compared once more, number by number. Only the numbers printed with the
stated number of decimal places (here 3, as ``f"{score:.3f}"`` prints them) may differ, by at
most ``abs + rel * |stored value|`` (``abs`` and ``rel`` default to 0), and only if both are
printed with that many places. Every other number must be equal: settings (``lr 0.01``,
``3e-04``), counts, shapes. The text between the numbers must be equal too, and digits glued
to a name are text: ``layers.0``, ``W_2``, ``x1`` and ``v0.21`` are names, not numbers.
``places`` is required, so that no tolerance covers a setting by accident. A list is allowed
(``places=2,3``), and ``places=0`` lets integers move, such as ranks of trained updates
(``# NBVAL_TOLERANCE abs=2 places=0``): then every integer the cell prints may move, so print
counts that must not in another cell. Text after the settings, usually the reason in
parentheses, is ignored. A number is a run of digits with an optional point, exponent and
``,`` thousands separators (``4,551``); its places are the digits after its point
(``6.3472e+00``: 4; ``37`` and ``1e-05``: 0).

Trained scores differ in their last digits between CPUs (their vector units round differently,
and training amplifies it); settings, counts, shapes and words must not differ at all.

Loaded by the repository's ``conftest.py``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import NamedTuple

MARKER = re.compile(r"^\s*#\s*NBVAL_TOLERANCE\b(.*)$", re.MULTILINE)
SETTING = re.compile(r"(abs|rel|places)=(\S+)")
TOKEN = re.compile(r"""
    (?P<name>[^\W\d]\w*(?:\.\w+)*)                 # a name, with any digits glued to it: layers.0, W_2, x1, v0.21
  | (?P<number>(?:(?<!\w)[-+])?                    # a sign, unless it is a hyphen as in "steps 1-20"
               (?:\d+(?:,\d{3})*(?:\.\d+)?|\.\d+)  # 4,551  0.932  .5
               (?:[eE][-+]?\d+)?)                  # 1.2e-03
""", re.VERBOSE)


class Tolerance(NamedTuple):
    """How far a cell's numbers printed with ``places`` decimal places may move."""
    absolute: float
    relative: float
    places: frozenset[int]

    def __str__(self):
        return f"abs={self.absolute:g} rel={self.relative:g} places={','.join(map(str, sorted(self.places)))}"

    def covers(self, stored: str, fresh: str) -> bool:
        """Whether two printed numbers both have one of the decimal places this tolerance covers."""
        return decimal_places(stored) == decimal_places(fresh) and decimal_places(stored) in self.places


def tolerance_of(source: str) -> Tolerance | None:
    """The tolerance stated by the cell's NBVAL_TOLERANCE line, or None if it has none."""
    match = MARKER.search(source)
    if match is None:
        return None
    settings = {}
    for word in match.group(1).split():
        setting = SETTING.fullmatch(word)
        if setting is None:   # the free text (a reason) starts
            break
        settings[setting[1]] = setting[2]
    line = match.group(0).strip()
    if "abs" not in settings and "rel" not in settings:
        raise ValueError(f"NBVAL_TOLERANCE needs abs=... and/or rel=..., got {line!r}")
    if "places" not in settings:
        raise ValueError(f"NBVAL_TOLERANCE needs places=...: the decimal places of the measured numbers it covers "
                         f"(places=3 for scores printed with .3f, places=0 for integers), got {line!r}")
    try:
        tolerance = Tolerance(float(settings.get("abs", 0)), float(settings.get("rel", 0)),
                              frozenset(int(places) for places in settings["places"].split(",")))
    except ValueError:
        raise ValueError(f"NBVAL_TOLERANCE: cannot read the numbers in {line!r}") from None
    if min(tolerance.absolute, tolerance.relative, *tolerance.places) < 0:
        raise ValueError(f"NBVAL_TOLERANCE: negative setting in {line!r}")
    return tolerance


def split_at_numbers(text: str) -> list[str]:
    """``[text, number, text, ..., number, text]``: the numbers in ``text`` and what lies between them."""
    pieces, start = [], 0
    for match in TOKEN.finditer(text):
        if match["number"]:
            pieces += [text[start:match.start()], match["number"]]
            start = match.end()
    return pieces + [text[start:]]


def decimal_places(number: str) -> int:
    """Digits after the point of a number as printed: 3 for ``0.932``, 4 for ``6.3472e+00``, 0 for ``37``."""
    mantissa = number.lower().partition("e")[0]
    return len(mantissa.partition(".")[2])


def texts_close(stored: str, fresh: str, tolerance: Tolerance) -> str | None:
    """None if ``fresh`` equals ``stored`` up to the tolerance, else what differs."""
    a, b = split_at_numbers(stored), split_at_numbers(fresh)
    if len(a) != len(b):
        return "the outputs hold different numbers of numbers"
    for index, (x, y) in enumerate(zip(a, b)):
        if x == y:
            continue
        if index % 2 == 0:   # text between numbers
            return f"the text differs: {x!r} != {y!r}"
        if not tolerance.covers(x, y):
            return f"{x} became {y}, but only the numbers covered by {tolerance} may differ"
        expected, got = float(x.replace(",", "")), float(y.replace(",", ""))
        if abs(got - expected) > tolerance.absolute + tolerance.relative * abs(expected):
            return f"{x} became {y}, beyond the tolerance {tolerance}"
    return None


def _flatten(cell, outputs, skip):
    """nbval's view of a cell's outputs: for each key (stdout, text/plain, ...) its values."""
    from nbval.plugin import transform_streams_for_comparison
    flat = defaultdict(list)
    for output in transform_streams_for_comparison(outputs):
        for key, value in output.items():
            if key in skip:
                continue
            if key == "data":
                for data_key, data_value in value.items():
                    if data_key not in skip:
                        flat[data_key].append(cell.sanitize(data_value))
            else:
                flat[key].append(cell.sanitize(value))
    return flat


def outputs_close(cell, test, ref, tolerance) -> str | None:
    """None if the fresh outputs equal the stored ones within the tolerance, else why not."""
    skip = cell.parent.skip_compare
    fresh, stored = _flatten(cell, test, skip), _flatten(cell, ref, skip)
    if set(fresh) != set(stored):
        return f"different kinds of output: {sorted(stored)} stored, {sorted(fresh)} now"
    for key in stored:
        if len(stored[key]) != len(fresh[key]):
            return f"a different number of {key} outputs"
        for a, b in zip(stored[key], fresh[key]):
            if not (isinstance(a, str) and isinstance(b, str)):
                if a != b:
                    return f"{key} differs"
                continue
            problem = texts_close(a, b, tolerance)
            if problem:
                return problem
    return None


def pytest_configure(config):
    """Teach nbval's cell comparison the NBVAL_TOLERANCE rule."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:   # nbval is not installed: nothing to extend
        return
    if getattr(IPyNbCell.compare_outputs, "with_tolerance", False):
        return
    exact = IPyNbCell.compare_outputs

    def compare_outputs(self, test, ref, skip_compare=None):
        if exact(self, test, ref, skip_compare):
            return True
        try:
            tolerance = tolerance_of(self.cell.source)
        except ValueError as problem:
            self.raise_cell_error(str(problem))
        if tolerance is None:
            return False
        problem = outputs_close(self, test, ref, tolerance)
        if problem is None:
            self.comparison_traceback = []
            return True
        self.comparison_traceback.append(f"Compared within the cell's NBVAL_TOLERANCE too: {problem}")
        return False

    compare_outputs.with_tolerance = True
    IPyNbCell.compare_outputs = compare_outputs
