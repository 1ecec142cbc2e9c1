"""How zapw's JavaScript sees JSON values: truthiness, `${value}` and `toISOString()`.

zapw validates with `if (!req.text)` and builds messages with template strings, so the
simulator has to judge and print values the JavaScript way to give the same answers.
"""

from __future__ import annotations

import json
import math
import time
from datetime import UTC, datetime
from typing import Any


def js_truthy(value: Any) -> bool:
    """`!!value` in JavaScript: only null, false, 0, NaN and "" are falsy."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0 and not math.isnan(value)
    if isinstance(value, str):
        return value != ""
    return True


def js_string(value: Any) -> str:
    """`${value}` in JavaScript, for the ids zapw puts in its messages."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return ",".join("" if item is None else js_string(item) for item in value)
    return "[object Object]"


def map_key(value: Any) -> str:
    """A key that keeps JSON values apart the way a JavaScript `Map` does (5 is not "5")."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def iso_timestamp(epoch: float | None = None) -> str:
    """`new Date().toISOString()`: UTC, milliseconds, a trailing Z."""
    moment = datetime.fromtimestamp(time.time() if epoch is None else epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_ms(epoch: float | None = None) -> int:
    """`Date.now()`."""
    return int((time.time() if epoch is None else epoch) * 1000)
