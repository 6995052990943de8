"""nbval, plus one rule: numbers from float training are compared within a stated tolerance.

A cell whose metadata states a tolerance, such as

    "metadata": {"nbval": {"tolerance": "abs=0.03 places=3 (results of training: the last digits differ between CPUs)"}}

is run and compared as nbval runs and compares every cell, with two differences. The harness
stays out of the cell's source, which students read: a ``# NBVAL_TOLERANCE`` line in the source
is an error (it used to be the way to state a tolerance; the cell fails, saying where it goes
now). Likewise a cell whose output is not compared carries nbval's own cell tag
``nbval-ignore-output``, with the reason, if any, in ``"nbval": {"ignore_output_reason": "..."}``
(read by people only), rather than a ``# NBVAL_IGNORE_OUTPUT`` comment.

Its outputs. When the fresh outputs differ from the stored ones, they are compared once more,
number by number. Only the numbers printed with the stated number of decimal places (here 3,
as ``f"{score:.3f}"`` prints them) may differ, by at most ``abs + rel * |stored value|``
(``abs`` and ``rel`` default to 0), and only if both are printed with that many places. Every
other number must be equal: settings (``lr 0.01``, ``3e-04``), counts, shapes. The text
between the numbers must be equal too, and digits glued to a name are text: ``layers.0``,
``W_2``, ``x1`` and ``v0.21`` are names, not numbers. ``places`` is required, so that no
tolerance covers a setting by accident; a cell whose tolerance lacks it fails. A list is allowed
(``places=2,3``), and ``places=0`` lets integers move, such as ranks of trained updates
(``"abs=2 places=0"``): then every integer the cell prints may move, so print
counts that must not in another cell. Likewise a setting printed with the places of a
measured number is covered (``lr 0.001`` next to ``.3f`` scores): print it another way, such
as ``f"{lr:.0e}"``. Text after the settings, usually the reason in parentheses, is ignored. A
number is a run of digits with an optional point, exponent and ``,`` thousands separators
(``4,551``); its places are the digits after its point
(``6.3472e+00``: 4; ``37`` and ``1e-05``: 0).

Its asserts. The kernel runs the cell with each assert rewritten (the notebook itself is not
changed), so that every ordering comparison in an assert's test (``<``, ``<=``, ``>``, ``>=``,
chained ones included, also inside ``and``, ``not`` or ``all(...)``) between two real numbers
(``numbers.Real``, ``bool`` excluded) must come out the same however its measured sides move
within the tolerance; a side that is a number literal (``0.02``, ``3 * 8``) does not move. A
conclusion drawn from toleranced numbers thus holds by a margin wider than the tolerance:
``assert gap < 0.02`` under ``abs=0.03`` fails even when ``gap`` is 0, since on another CPU it
may be 0.021. Other comparisons (tensors, strings, ``==``) behave as written. The source the
kernel runs starts with the helper that checks the margins (24 lines), so in the kernel's
traceback of a failing cell, which shows the rewritten lines, the cell's line 1 is line 25.
All operands of a chained comparison are evaluated before it is checked. Asserts that only
guard a conclusion often sit in a cell of their own after the cell that prints the numbers
(tagged ``guard``: student copies, slides and the site leave them out); such a cell carries the
same tolerance as the cell it follows, so that its asserts keep their margins.

Trained scores differ in their last digits between CPUs (their vector units round differently,
and training amplifies it); settings, counts, shapes and words must not differ at all.

Loaded by the repository's ``conftest.py``.
"""

from __future__ import annotations

import ast
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


def tolerance_of(metadata: dict) -> Tolerance | None:
    """The tolerance stated in a cell's metadata (``nbval.tolerance``), or None if it states none."""
    text = (metadata.get("nbval") or {}).get("tolerance")
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError(f"the cell's nbval.tolerance is a string such as 'abs=0.03 places=3 (why)', got {text!r}")
    return parse_tolerance(text)


def check_source(source: str) -> None:
    """Raise ValueError if a cell's source states a tolerance: it belongs in the cell's metadata."""
    match = MARKER.search(source)
    if match is not None:
        raise ValueError(f"{match.group(0).strip()!r} in the cell's source is not read: state the tolerance in the "
                         f"cell's metadata instead, as \"nbval\": {{\"tolerance\": \"{match.group(1).strip()}\"}}, "
                         f"and remove the line")


def parse_tolerance(text: str) -> Tolerance:
    """The tolerance in ``text``: settings such as ``abs=0.03 rel=0.01 places=3``, then free text (a reason)."""
    line = text.strip()
    settings = {}
    for word in line.split():
        setting = SETTING.fullmatch(word)
        if setting is None:   # the free text (a reason) starts
            break
        settings[setting[1]] = setting[2]
    if "abs" not in settings and "rel" not in settings:
        raise ValueError(f"nbval tolerance needs abs=... and/or rel=..., got {line!r}")
    if "places" not in settings:
        raise ValueError(f"nbval tolerance needs places=...: the decimal places of the measured numbers it covers "
                         f"(places=3 for scores printed with .3f, places=0 for integers), got {line!r}")
    try:
        tolerance = Tolerance(float(settings.get("abs", 0)), float(settings.get("rel", 0)),
                              frozenset(int(places) for places in settings["places"].split(",")))
    except ValueError:
        raise ValueError(f"nbval tolerance: cannot read the numbers in {line!r}") from None
    if min(tolerance.absolute, tolerance.relative, *tolerance.places) < 0:
        raise ValueError(f"nbval tolerance: negative setting in {line!r}")
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


# --- Margins of asserts: the source the kernel runs instead of the cell's own ---

OPERATORS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
             ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
ORDERING = ("<", "<=", ">", ">=")
HELPER_SOURCE = '''\
def _nbval_margin(values, ops, literal, text, absolute=%(absolute)r, relative=%(relative)r):
    """Added by tests/nbval_tolerance.py: a comparison of measured numbers in an assert needs a margin."""
    import numbers
    import operator
    compare = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
               "!=": operator.ne, "is": operator.is_, "is not": operator.is_not,
               "in": lambda a, b: a in b, "not in": lambda a, b: a not in b}

    def real(value):
        return isinstance(value, numbers.Real) and not isinstance(value, bool)

    for i, op in enumerate(ops):
        a, b = values[i], values[i + 1]
        result = compare[op](a, b)
        if op in ("<", "<=", ">", ">=") and real(a) and real(b):
            slack_a, slack_b = (0.0 if literal[k] else absolute + relative * abs(values[k]) for k in (i, i + 1))
            if compare[op](a - slack_a, b + slack_b) != compare[op](a + slack_a, b - slack_b):
                raise AssertionError(
                    f"{text}: {float(a):.6g} {op} {float(b):.6g} is {bool(result)}, but its sides are only "
                    f"{abs(a - b):.3g} apart, and the cell's nbval tolerance (abs={absolute:g}, rel={relative:g}) "
                    f"lets the measured ones move by {slack_a + slack_b:.3g} together: assert it with a wider margin")
        if i < len(ops) - 1 and not result:   # a chain stops at its first false comparison
            return result
    return result
'''


def _is_literal(node: ast.expr) -> bool:
    """Whether an expression is made of number literals only (``0.02``, ``-1``, ``3 * 8``)."""
    arithmetic = ast.Constant | ast.UnaryOp | ast.BinOp | ast.unaryop | ast.operator
    return all(isinstance(n, arithmetic) for n in ast.walk(node))


class _Margins(ast.NodeTransformer):
    """Turns ``x < 0.02`` into ``_nbval_margin((x, 0.02), ('<',), (False, True), 'x < 0.02')``."""

    def visit_Compare(self, node):
        text = ast.unparse(node)
        self.generic_visit(node)
        if not any(OPERATORS[type(op)] in ORDERING for op in node.ops):
            return node
        operands = [node.left, *node.comparators]
        return ast.Call(ast.Name("_nbval_margin", ast.Load()), [
            ast.Tuple(operands, ast.Load()),
            ast.Tuple([ast.Constant(OPERATORS[type(op)]) for op in node.ops], ast.Load()),
            ast.Tuple([ast.Constant(_is_literal(operand)) for operand in operands], ast.Load()),
            ast.Constant(text)], [])


def with_margins(source: str, tolerance: Tolerance) -> str:
    """The cell's source as the kernel runs it: the margin helper, then the cell with its asserts rewritten.

    Unchanged if no assert has an ordering comparison. Only the asserts' text changes, and each
    keeps its lines, so the cell's own lines stay as they are.
    """
    python = source
    try:
        tree = ast.parse(python)
    except SyntaxError:   # IPython syntax such as %time or !ls: check the Python the kernel will make of it
        from IPython.core.inputtransformer2 import TransformerManager
        python = TransformerManager().transform_cell(source)
        try:
            tree = ast.parse(python)
        except SyntaxError:   # the kernel will report it
            return source
    asserts = [node for node in ast.walk(tree) if isinstance(node, ast.Assert)
               and any(isinstance(n, ast.Compare) and any(OPERATORS[type(op)] in ORDERING for op in n.ops)
                       for n in ast.walk(node.test))]
    if not asserts:
        return source
    lines = python.split("\n")

    def offset(line, column):   # ast counts lines from 1 and columns in UTF-8 bytes
        return sum(len(text) + 1 for text in lines[:line - 1]) + len(lines[line - 1].encode()[:column].decode())

    for node in sorted(asserts, key=lambda n: (n.lineno, n.col_offset), reverse=True):
        start, end = offset(node.lineno, node.col_offset), offset(node.end_lineno, node.end_col_offset)
        test = ast.unparse(_Margins().visit(node.test)) + "\n" * (node.end_lineno - node.lineno)
        message = "" if node.msg is None else ", " + ast.unparse(node.msg)
        python = f"{python[:start]}assert ({test}){message}{python[end:]}"
    return HELPER_SOURCE % {"absolute": tolerance.absolute, "relative": tolerance.relative} + python


def pytest_configure(config):
    """Teach nbval's cells the tolerance rule: margins for asserts, tolerance for outputs."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:   # nbval is not installed: nothing to extend
        return
    if getattr(IPyNbCell.compare_outputs, "with_tolerance", False):
        return
    exact, plain_runtest = IPyNbCell.compare_outputs, IPyNbCell.runtest

    def runtest(self):
        source = self.cell.source
        try:
            check_source(source)
            tolerance = tolerance_of(self.cell.metadata)
        except ValueError as problem:
            self.raise_cell_error(str(problem))
        if tolerance is None:
            return plain_runtest(self)
        # The kernel runs the rewritten source; everything else (a failure's report included) sees the cell's own.
        kernel, rewritten = self.parent.kernel, with_margins(source, tolerance)
        execute = kernel.execute_cell_input
        kernel.execute_cell_input = lambda _source, allow_stdin=None: execute(rewritten, allow_stdin)
        try:
            return plain_runtest(self)
        finally:
            del kernel.execute_cell_input

    def compare_outputs(self, test, ref, skip_compare=None):
        if exact(self, test, ref, skip_compare):
            return True
        tolerance = tolerance_of(self.cell.metadata)
        if tolerance is None:
            return False
        problem = outputs_close(self, test, ref, tolerance)
        if problem is None:
            self.comparison_traceback = []
            return True
        self.comparison_traceback.append(f"Compared within the cell's tolerance too: {problem}")
        return False

    compare_outputs.with_tolerance = True
    IPyNbCell.compare_outputs, IPyNbCell.runtest = compare_outputs, runtest
