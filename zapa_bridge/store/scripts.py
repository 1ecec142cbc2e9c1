"""Lua scripts are `.lua` files beside the module that runs them, read once at import."""

from __future__ import annotations

from importlib.resources import files


def read(package: str, name: str) -> str:
    """The text of the script file `name` of `package` (pass the module's `__package__`)."""
    return files(package).joinpath(name).read_text(encoding="utf-8")
