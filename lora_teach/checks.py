"""Input checks shared by every module, in the spirit of scikit-learn's ``check_scalar``.

A public function of the course checks its arguments first and raises an error that names
the argument and says what was wrong: ``TypeError`` for a value of the wrong kind,
``ValueError`` for a value of the right kind outside its allowed range. A student who passes
``r=2.5`` or ``targets="W_q"`` should read what to change, not a torch traceback.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import numpy as np


def is_int(value) -> bool:
    """True for Python and numpy integers; False for bools, which Python counts as ints."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int, refusing bools, floats such as 2.0 and values outside the range."""
    for bound, bound_name in ((minimum, "minimum"), (maximum, "maximum")):
        if bound is not None and not is_int(bound):
            raise TypeError(f"{bound_name} must be an integer or None, got {bound!r}")
    if not is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_real(value, name: str, minimum: float | None = None, maximum: float | None = None,
               include_minimum: bool = True, include_maximum: bool = True) -> float:
    """``value`` as a finite float within the range; NaN, infinities and bools are refused."""
    for bound, bound_name in ((minimum, "minimum"), (maximum, "maximum")):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, numbers.Real)):
            raise TypeError(f"{bound_name} must be a real number or None, got {bound!r}")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if minimum is not None and (value < minimum or (value == minimum and not include_minimum)):
        raise ValueError(f"{name} must be {'>=' if include_minimum else '>'} {minimum}, got {value}")
    if maximum is not None and (value > maximum or (value == maximum and not include_maximum)):
        raise ValueError(f"{name} must be {'<=' if include_maximum else '<'} {maximum}, got {value}")
    return value


def check_bool(value, name: str) -> bool:
    """``value`` if it is True or False; the string 'False' (which is truthy) is refused."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_choice(value, name: str, options) -> object:
    """``value`` if it is one of ``options``."""
    if isinstance(options, str) or not isinstance(options, Iterable) or not (options := tuple(options)):
        raise TypeError(f"options must be a non-empty list or tuple, got {options!r}")
    if value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")
    return value


def check_names(values, name: str, options: Iterable[str] | None = None) -> tuple[str, ...]:
    """A non-empty sequence of distinct strings (a single string is refused, since iterating
    over it would give its letters), each one of ``options`` when those are given."""
    if isinstance(values, str):
        raise TypeError(f"{name} must be a list or tuple of names, got the string {values!r}; "
                        f"write ({values!r},) for one name")
    if not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a list or tuple of names, got {type(values).__name__}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name} is empty: give at least one name")
    for value in values:
        if not isinstance(value, str):
            raise TypeError(f"{name} must hold strings, got {value!r} ({type(value).__name__})")
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{name} names {repeated} more than once")
    if options is not None:
        if isinstance(options, str) or not isinstance(options, Iterable):
            raise TypeError(f"options must be a list or tuple of names, got {options!r}")
        options = list(options)
        unknown = [value for value in values if value not in options]
        if unknown:
            raise ValueError(f"unknown {name} {unknown}; choose from {options}")
    return values


def check_sequence(value, name: str, what: str = "items") -> list:
    """``value`` as a list: a list, tuple, generator or any other iterable of ``what``, but not a
    single string (iterating over it would give its letters). The items are not checked."""
    if isinstance(value, str):
        raise TypeError(f"{name} must be a list of {what}, got the string {value[:40]!r}")
    if not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of {what}, got {type(value).__name__}")
    return list(value)


def check_array(value, name: str, ndim: int) -> np.ndarray:
    """``value`` (nested lists, a numpy array, a CPU tensor) as a non-empty float array with
    ``ndim`` dimensions; text, None and other things that are not numbers are refused."""
    check_int(ndim, "ndim", minimum=1)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:   # rows of different lengths, a tensor with grad
        raise ValueError(f"{name} must be a {ndim}-D array of numbers; numpy cannot read it: {error}") from None
    if array.dtype.kind not in "biuf":   # bool, int, unsigned int, float
        raise TypeError(f"{name} must be a {ndim}-D array of numbers, got {type(value).__name__} "
                        f"(numpy reads it as {array.dtype})")
    if array.ndim != ndim or array.size == 0:
        raise ValueError(f"{name} must be a non-empty {ndim}-D array, got shape {array.shape}")
    return array.astype(float)


def _type_name(kind: type) -> str:
    """How a student would write the type: ``torch.nn.Linear``, ``random.Random``, ``ModelM``."""
    module = kind.__module__
    if module == "builtins" or module.startswith("lora_teach"):
        return kind.__name__
    parts = module.split(".")
    prefix = ".".join(parts[:parts.index("nn") + 1]) if "nn" in parts else parts[0]
    return f"{prefix}.{kind.__name__}"


def check_instance(value, name: str, kind: type | tuple[type, ...]) -> object:
    """``value`` if it is an instance of ``kind``."""
    if not isinstance(kind, type) and not (isinstance(kind, tuple) and kind and all(isinstance(k, type) for k in kind)):
        raise TypeError(f"kind must be a type or a non-empty tuple of types, got {kind!r}")
    if not isinstance(value, kind):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        wanted = " or ".join(_type_name(k) for k in kinds)
        raise TypeError(f"{name} must be a {wanted}, got {type(value).__name__}")
    return value
