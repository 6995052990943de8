"""nbval, plus one rule: numbers from float training are compared within a stated tolerance.

A cell whose source has a line such as

    # NBVAL_TOLERANCE abs=0.02

is compared as nbval compares every cell, except that when the outputs differ, they are
compared once more number by number: every piece of text between the numbers must be equal,
every integer must be equal, and every decimal number (one with a point or an exponent) may
differ by at most ``abs + rel * |stored value|`` (``abs`` and ``rel`` default to 0). Trained
scores differ in their last digits between CPUs (their vector units round differently, and
training amplifies it); counts, shapes and words must not differ at all.

Loaded by the repository's ``conftest.py``.
"""

from __future__ import annotations

import re
from collections import defaultdict

MARKER = re.compile(r"^\s*#\s*NBVAL_TOLERANCE\b(.*)$", re.MULTILINE)
SETTING = re.compile(r"(abs|rel)=([0-9.eE+-]+)")
NUMBER = re.compile(r"([-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)")


def tolerance_of(source: str) -> tuple[float, float] | None:
    """(abs, rel) from the cell's NBVAL_TOLERANCE line, or None if it has none."""
    match = MARKER.search(source)
    if match is None:
        return None
    settings = dict(SETTING.findall(match.group(1)))
    if not settings:
        raise ValueError(f"NBVAL_TOLERANCE needs abs=... and/or rel=..., got {match.group(0)!r}")
    return float(settings.get("abs", 0.0)), float(settings.get("rel", 0.0))


def _is_integer(text: str) -> bool:
    return "." not in text and "e" not in text.lower()


def texts_close(stored: str, fresh: str, tolerance: tuple[float, float]) -> str | None:
    """None if ``fresh`` equals ``stored`` up to the tolerance, else what differs."""
    absolute, relative = tolerance
    a, b = NUMBER.split(stored), NUMBER.split(fresh)
    if len(a) != len(b):
        return "the outputs hold different numbers of numbers"
    for index, (x, y) in enumerate(zip(a, b)):
        if index % 2 == 0:   # text between numbers
            if x != y:
                return f"the text differs: {x!r} != {y!r}"
            continue
        if _is_integer(x) and _is_integer(y):
            if x != y:
                return f"the integer {x} became {y}"
            continue
        expected, got = float(x.replace(",", "")), float(y.replace(",", ""))
        if abs(got - expected) > absolute + relative * abs(expected):
            return f"{x} became {y}, beyond the tolerance abs={absolute:g}, rel={relative:g}"
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
        tolerance = tolerance_of(self.cell.source)
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
