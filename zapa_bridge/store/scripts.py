"""Lua scripts are `.lua` files beside the module that runs them, read once at import.

A script is assembled from the functions and constants it uses, then its own file (the one
that opens with its KEYS/ARGV legend). Constants that Python owns (the message statuses,
say) are written into Lua with `lua_string`, so no script spells them itself.
"""

from __future__ import annotations

from importlib.resources import files


def read(package: str, name: str) -> str:
    """The text of the script file `name` of `package` (pass the module's `__package__`)."""
    return files(package).joinpath(name).read_text(encoding="utf-8")


def lua_string(value: str) -> str:
    """`value` as a Lua string literal; printable ASCII only, which is all our names are."""
    if not (value.isascii() and value.isprintable()):
        raise ValueError(f"not a plain Lua string: {value!r}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
