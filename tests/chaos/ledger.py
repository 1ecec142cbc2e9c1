"""What a scenario enqueued, and what the simulated bridge accepted of it.

Every message carries its place in its conversation in its text (`c07-0042`: the 42nd
message of conversation 7), so the simulator's record of accepted sends is enough to count
what was lost, what was sent twice and what overtook an earlier message.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from zapa_bridge.simulator import SentMessage


@dataclass(frozen=True, slots=True)
class Conversation:
    """One session writing to one recipient: the unit of ordering."""

    number: int
    session: str
    to: str

    def text(self, index: int) -> str:
        return f"c{self.number:02d}-{index:04d}"


def conversations(count: int, sessions: Sequence[str]) -> list[Conversation]:
    """`count` conversations spread over `sessions` in turn, each to a recipient of its own."""
    return [Conversation(n, sessions[n % len(sessions)], f"55119{n:08d}") for n in range(count)]


def round_robin(convs: Sequence[Conversation], start: int, count: int,
                burst: int = 5) -> Iterator[tuple[Conversation, int]]:
    """Messages `start`..`start + count - 1` of a run, as (conversation, index): each
    conversation in turn gets `burst` messages in a row. Back-to-back messages of one
    conversation are what parallel workers would reorder if nothing kept them in line."""
    for k in range(start, start + count):
        block, offset = divmod(k, burst)
        turn, number = divmod(block, len(convs))
        yield convs[number], turn * burst + offset


@dataclass(frozen=True, slots=True)
class Enqueued:
    """One message a scenario handed to zapa-bridge, and the text the bridge should get."""

    conversation: Conversation
    index: int
    message_id: str
    text: str


class Ledger:
    """The messages of a scenario in the order each conversation enqueued them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Enqueued] = []

    def add(self, conversation: Conversation, index: int, message_id: str,
            text: str | None = None) -> None:
        entry = Enqueued(conversation, index, message_id, text or conversation.text(index))
        with self._lock:
            self._items.append(entry)

    def items(self) -> list[Enqueued]:
        with self._lock:
            return list(self._items)

    def ids(self) -> list[str]:
        return [item.message_id for item in self.items()]

    def texts(self, session: str | None = None) -> set[str]:
        return {item.text for item in self.items()
                if session in (None, item.conversation.session)}

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


@dataclass(frozen=True, slots=True)
class Tally:
    """The figures of a run, from the simulator's record of accepted sends."""

    messages: int
    sent: int  # sends the bridge accepted, every copy counted
    lost: tuple[str, ...]  # texts enqueued and never accepted
    extra_copies: dict[str, int]  # text -> copies accepted beyond the first
    order_violations: int  # messages accepted after a later one of their conversation
    strays: int  # accepted sends nobody enqueued, or through the wrong session or recipient

    @property
    def duplicates(self) -> int:
        return sum(self.extra_copies.values())

    @classmethod
    def of(cls, enqueued: Sequence[Enqueued], sends: Sequence[SentMessage]) -> Tally:
        expected = {item.text: item for item in enqueued}
        copies: Counter[str] = Counter()
        firsts: dict[Conversation, list[int]] = defaultdict(list)
        strays = 0
        for send in sends:
            item = expected.get(send.body.get("text", ""))
            if item is None or (send.session_id, send.body.get("to")) != (
                    item.conversation.session, item.conversation.to):
                strays += 1
                continue
            copies[item.text] += 1
            if copies[item.text] == 1:
                firsts[item.conversation].append(item.index)
        return cls(
            messages=len(enqueued),
            sent=sum(copies.values()),
            lost=tuple(sorted(text for text in expected if not copies[text])),
            extra_copies={text: n - 1 for text, n in copies.items() if n > 1},
            order_violations=sum(overtaken(indexes) for indexes in firsts.values()),
            strays=strays,
        )


def overtaken(indexes: Sequence[int]) -> int:
    """How many entries come after a larger one: messages a later message overtook."""
    highest, count = -1, 0
    for index in indexes:
        if index < highest:
            count += 1
        highest = max(highest, index)
    return count


def busiest_window(times: Sequence[float], window: float) -> int:
    """The most events found in any half-open interval [t, t + window)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= window:
            first += 1
        most = max(most, last - first + 1)
    return most
