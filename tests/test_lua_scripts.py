"""The Lua scripts as files: each opens with its legend, names statuses only through the
preamble made from `MessageStatus`, and builds no key it could be given in KEYS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from zapa_bridge.outbound.status_store import (
    DEAD_STATUSES,
    FINAL_STATUSES,
    LUA_STATUSES,
    MessageStatus,
)

PACKAGE = Path(__file__).resolve().parent.parent / "zapa_bridge"
SCRIPTS = sorted(PACKAGE.rglob("*.lua"))
_STATUS_WORDS = "|".join(re.escape(str(status)) for status in MessageStatus)
# A status spelt in Lua: quoted ('held'), or as a table's key ({sent=true}).
STATUS_LITERAL = re.compile(
    rf"""(['"])(?P<quoted>{_STATUS_WORDS})\1|[{{,]\s*(?P<key>{_STATUS_WORDS})\s*=(?!=)""")

# (script, literal): why the word may stand there quoted.
STATUS_LITERALS_ALLOWED: dict[tuple[str, str], str] = {}

# Scripts that build a key themselves, from an id only they can read (see their legends).
BUILDS_KEYS = {
    "store/key_part.lua": "the escaping function itself",
    "outbound/status_store.create.lua": "the record of the idempotency key's owner",
    "outbound/status_store.lane_leave.lua": "the record and body of the lane's next message",
    "outbound/receipts.receive.lua": "the record and body zapw's id names",
}


def name(script: Path) -> str:
    return script.relative_to(PACKAGE).as_posix()


def status_literals(script: Path) -> set[tuple[str, str]]:
    """(script, status) for each status the script spells itself."""
    return {(name(script), match["quoted"] or match["key"])
            for match in STATUS_LITERAL.finditer(script.read_text(encoding="utf-8"))}


def test_the_scripts_are_found():
    assert "outbound/status_store.transition.lua" in map(name, SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
def test_a_script_opens_with_its_legend(script):
    first = script.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(("-- KEYS[1] ", "-- No KEYS nor ARGV: "))


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
def test_a_script_names_no_status_but_through_the_preamble(script):
    assert set() == status_literals(script) - STATUS_LITERALS_ALLOWED.keys()


def test_every_allowed_status_literal_is_still_there():
    """An entry left in the list after its script changed would hide a new literal."""
    found = set().union(*map(status_literals, SCRIPTS))
    assert set(STATUS_LITERALS_ALLOWED) <= found


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
def test_a_script_names_only_statuses_that_exist(script):
    """A misspelt `S.NAME` is nil in Lua, and a comparison with it silently false."""
    used = set(re.findall(r"\bS\.(\w+)", script.read_text(encoding="utf-8")))
    assert set() == used - set(MessageStatus.__members__)


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
def test_a_script_builds_no_key_but_the_documented_ones(script):
    builds = "key_part(" in script.read_text(encoding="utf-8")
    assert builds == (name(script) in BUILDS_KEYS)


def test_the_status_preamble_is_the_enum_in_lua(redis_db):
    statuses = list(MessageStatus)
    body = ("local names, final, dead = {}, {}, {}\n"
            "for i, name in ipairs(ARGV) do\n"
            "  names[i] = S[name]\n"
            "  if FINAL[S[name]] then table.insert(final, S[name]) end\n"
            "  if DEAD[S[name]] then table.insert(dead, S[name]) end\n"
            "end\n"
            "return {names, final, dead}\n")
    names, final, dead = redis_db.eval(LUA_STATUSES + body, 0,
                                       *(status.name for status in statuses))
    assert [str(status) for status in statuses] == names
    assert [str(status) for status in statuses if status in FINAL_STATUSES] == final
    assert [str(status) for status in statuses if status in DEAD_STATUSES] == dead
