"""JavaScript value semantics that OHIF's display-set rules depend on, over naturalized metadata.

OHIF's rules are JavaScript over dcmjs-naturalized instances: a one-item sequence reads through
to its item (dcmjs's ``addAccessors``), values are truthy or falsy the JavaScript way, ``Number``
and ``parseFloat`` convert, ``Math.round`` rounds half up and gl-matrix computes in float32.
Reproducing those here lets the rules below follow OHIF's code line by line.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Any

NAN = float("nan")
_FLOAT_PREFIX = re.compile(r"^\s*([+-]?(?:inf(?:inity)?|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")


def truthy(value: Any) -> bool:
    """JavaScript truthiness: ``None``, ``False``, 0, NaN and ``""`` are false; lists are true."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float):
        return value == value and value != 0
    if isinstance(value, str):
        return value != ""
    return True


def item(value: Any, key: str) -> Any:
    """``value.key`` on a naturalized value: a dict's key, or a one-item sequence's item's key."""
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], Mapping):
        return value[0].get(key)
    return None


def first(value: Any) -> Any:
    """``value?.[0]``: a list's first element, a string's first character, else ``None``."""
    if isinstance(value, list | str):
        return value[0] if value else None
    return None


def at(value: Any, index: int) -> Any:
    """``value?.[index]`` for lists and strings (``None`` when out of range)."""
    if isinstance(value, list | str) and 0 <= index < len(value):
        return value[index]
    return None


def number(value: Any) -> float:
    """JavaScript ``Number(value)`` for scalars (``None`` stands for ``undefined``: NaN)."""
    if value is None:
        return NAN
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        try:
            return float(text)
        except ValueError:
            return NAN
    if isinstance(value, list) and len(value) <= 1:
        return number(value[0]) if value else 0.0
    return NAN


def to_number(value: Any) -> Any:
    """OHIF's ``toNumber``: lists become lists of numbers; ``undefined`` stays ``None``."""
    if isinstance(value, list):
        return [number(v) if v is not None else None for v in value]
    return None if value is None else number(value)


def parse_float(value: Any) -> float:
    """JavaScript ``parseFloat(value)``: the number at the start of ``String(value)``, else NaN."""
    if isinstance(value, bool) or value is None:
        return NAN
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        value = ",".join("" if v is None else str(v) for v in value)
    match = _FLOAT_PREFIX.match(str(value))
    return float(match.group(1)) if match else NAN


def strict_equal(a: Any, b: Any) -> bool:
    """JavaScript ``a === b`` for the scalar values naturalized metadata holds."""
    if a is None or b is None:
        return a is None and b is None
    a_num = isinstance(a, int | float) and not isinstance(a, bool)
    b_num = isinstance(b, int | float) and not isinstance(b, bool)
    if a_num != b_num:
        return False
    if isinstance(a, list) or isinstance(b, list):
        return a is b
    return bool(a == b)


def js_round(x: float) -> float:
    """JavaScript ``Math.round``: halves round up (towards +infinity)."""
    if math.isnan(x) or math.isinf(x):
        return x
    return float(math.floor(x + 0.5))


def f32(x: float) -> float:
    """``x`` stored in a Float32Array (gl-matrix's vec3) and read back."""
    try:
        return float(struct.unpack("f", struct.pack("f", x))[0])
    except OverflowError:
        return math.copysign(math.inf, x)


def vec3(values: Sequence[Any]) -> tuple[float, float, float]:
    """gl-matrix ``vec3.fromValues`` of the first three values (float32; missing ones NaN)."""
    padded = [number(values[i]) if i < len(values) else NAN for i in range(3)]
    return (f32(padded[0]), f32(padded[1]), f32(padded[2]))


def cross(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """gl-matrix ``vec3.cross`` into a float32 vector."""
    return (
        f32(a[1] * b[2] - a[2] * b[1]),
        f32(a[2] * b[0] - a[0] * b[2]),
        f32(a[0] * b[1] - a[1] * b[0]),
    )


def sub(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """gl-matrix ``vec3.subtract`` into a float32 vector (plain inputs converted with Number)."""
    return (
        f32(number(a[0]) - number(b[0])),
        f32(number(a[1]) - number(b[1])),
        f32(number(a[2]) - number(b[2])),
    )


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    """gl-matrix ``vec3.dot`` (a double sum of float32 components)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def template(value: Any) -> str:
    """How a value prints in a JavaScript template string (``undefined``, ``5``, ``1.5``)."""
    if value is None:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else template(v) for v in value)
    return str(value)


def integer(value: Any) -> int | None:
    """``Number(value)`` as an int, None where JavaScript has NaN or Infinity (a count such as
    NumberOfFrames kept verbatim as ``"Infinity"`` or ``"1e400"``)."""
    found = number(value)
    return int(found) if math.isfinite(found) else None


def number_key(value: float) -> str:
    """A JavaScript object key for a number (``String(n)``; -0 prints as 0)."""
    return template(value + 0.0) if not math.isnan(value) else "NaN"
