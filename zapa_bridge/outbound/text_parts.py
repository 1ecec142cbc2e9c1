"""The progress of a long text sent in parts, as its record keeps it (`parts`).

A text over 4,096 characters is one message, one record, one id for its caller; each
attempt sends its first part not yet sent, and the change that records zapw's answer
records that part's id with it. So a retry or a crash never sends again a part zapw took,
and the record's `parts` say what became of each: `queued` until sent, then `sent`,
`delivered`, `read` or `failed` as receipts come (status_store.receipt.lua moves them, and
the record's own status follows its least advanced part).
"""

from __future__ import annotations

import json
from typing import Any

from zapa_bridge.outbound.status_store import MessageStatus

S = MessageStatus
# What a part is once zapw took it.
TAKEN = frozenset({S.SENT, S.DELIVERED, S.READ})


def next_part(parts: list[dict[str, Any]], total: int) -> int:
    """The part to send next: the first not yet taken (0 before any was sent)."""
    for index in range(total):
        if index >= len(parts) or parts[index].get("status") not in TAKEN:
            return index
    return total


def failed_part(parts: list[dict[str, Any]]) -> int | None:
    """The first part zapw reported failed after taking it, if any."""
    for index, part in enumerate(parts):
        if part.get("status") == S.FAILED:
            return index
    return None


def with_sent(parts: list[dict[str, Any]], total: int, index: int,
              bridge_id: str) -> list[dict[str, Any]]:
    """`parts` (`total` of them) with part `index` taken by zapw under `bridge_id`."""
    progress = [dict(part) for part in parts[:total]]
    progress += [{"status": str(S.QUEUED)} for _ in range(total - len(progress))]
    progress[index] = {"id": bridge_id, "status": str(S.SENT)}
    return progress


def cleared_failures(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`parts` with each failed part to send again (a replay of the dead letter it made)."""
    return [{"status": str(S.QUEUED)} if part.get("status") == S.FAILED else dict(part)
            for part in parts]


def encode(parts: list[dict[str, Any]]) -> str:
    return json.dumps(parts, separators=(",", ":"))
