"""A long text as the parts of at most `limit` characters that zapw can send, in order.

Each part ends at the last paragraph break the limit allows, else the last sentence end,
else the last space; only a word longer than the limit is cut, and then between two
graphemes (user-perceived characters, Unicode's `\\X`), so an accent, an emoji sequence or a
flag never loses half of itself. A boundary is taken only when it leaves the part at least
half the limit long, so an early heading does not become a part of its own. The spaces
where a text was cut open and close no part. Pure functions: the same text always gives
the same parts, which is what lets a send resume at its first unsent part.
"""

from __future__ import annotations

import regex

_GRAPHEME = regex.compile(r"\X", flags=regex.DOTALL)
# Where a part may end, best first: before a blank line, after a sentence's end mark (and
# its closing quotes or brackets), before any space. The match's start is the cut.
_BOUNDARIES = (
    regex.compile(r"[ \t]*\r?\n[ \t]*\r?\n"),
    regex.compile(r"(?<=[.!?\u2026\u3002\uff01\uff1f][\"')\]\u00bb\u201d\u2019]*)\s+"),
    regex.compile(r"\s+"),
)


class UncuttableText(ValueError):
    """A single grapheme is longer than the limit: no part could hold it whole."""


def split_text(text: str, limit: int) -> list[str]:
    """`text` in parts of at most `limit` characters (code points), one part when it fits."""
    if limit < 2:
        raise ValueError("limit must be at least 2")
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = _cut(rest, limit)
        part = rest[:cut].rstrip()
        if part:  # a window of spaces alone
            parts.append(part)
        rest = rest[cut:].lstrip()
    if not parts:
        return [rest]
    if rest.strip():
        parts.append(rest.rstrip())
    return parts


def _cut(text: str, limit: int) -> int:
    """Where the first part of `text` (longer than `limit`) ends."""
    ends = _grapheme_ends(text, limit)
    if not ends:
        raise UncuttableText(f"a single grapheme is longer than {limit} characters")
    shortest = limit // 2
    for boundary in _BOUNDARIES:
        cuts = [found.start() for found in boundary.finditer(text, 0, limit + 1)
                if shortest <= found.start() and found.start() in ends
                and text[:found.start()].strip()]
        if cuts:
            return cuts[-1]
    return max(ends)


def _grapheme_ends(text: str, limit: int) -> set[int]:
    """The positions, from 1 to `limit`, where a grapheme of `text` ends."""
    ends: set[int] = set()
    for grapheme in _GRAPHEME.finditer(text):
        if grapheme.end() > limit:
            break
        ends.add(grapheme.end())
    return ends
