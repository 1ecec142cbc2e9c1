"""Every Redis key of ours, named in one place.

A key is `zapa:` and then parts joined by ':'. Parts that come from data (message ids,
session ids, lanes, zapw's message ids, idempotency keys, inbound ids) are escaped first,
'%' as '%25' and ':' as '%3A', so no part holds a ':' and two different tuples never give
the same key. An ordinary part (no ':' nor '%') is left as it is: those keys are the ones
the bridge always wrote.

Lua scripts take their keys in KEYS, built here. The two that must name a key of something
only they can find (the record and message body of a lane's next message, the record of an
idempotency key's owner) build it with `LUA_KEY_PART`, the same escaping in Lua, from
`MESSAGE_PREFIX` (and `MESSAGE_BODY_PREFIX`).
"""

from __future__ import annotations

from zapa_bridge.store import scripts

PREFIX = "zapa:"

# Outbound messages.
PENDING = f"{PREFIX}pending"  # zset: in a queue or with a worker, by when put there
DUE = f"{PREFIX}due"  # zset: waiting for a moment, by when due
LANE_HEADS = f"{PREFIX}lane-heads"  # hash: lane -> the message that may be sent now
LANE_SEQ = f"{PREFIX}lane-seq"  # counter: order of joining a lane
MESSAGES_RECENT = f"{PREFIX}msg-recent"  # list: latest message ids
DEAD = f"{PREFIX}dead"  # zset: dead letters, by when they died
HELD_SESSIONS = f"{PREFIX}held-sessions"  # set: sessions with held messages
MESSAGE_PREFIX = f"{PREFIX}msg:"
MESSAGE_BODY_PREFIX = f"{PREFIX}msg-body:"
HELD_PREFIX = f"{PREFIX}held:"
LANE_PREFIX = f"{PREFIX}lane:"
BRIDGE_PREFIX = f"{PREFIX}bridge:"

# Inbound events and messages.
SEEN_PREFIX = f"{PREFIX}seen:"
WEBHOOK_STATS = f"{PREFIX}stats:webhooks"  # hash: "<event type>:<outcome>" -> count
INBOUND_RECENT = f"{PREFIX}in:recent"  # list: latest inbound ids
INBOUND_DEAD = f"{PREFIX}in-dead"  # zset: inbound dead letters, by when they failed
BURSTS_DUE = f"{PREFIX}bursts-due"  # zset: senders with a burst to hand on, by when due

# The bridge's sessions.
SESSIONS = f"{PREFIX}sessions"  # hash: session id -> state (JSON)
SESSION_PHONES = f"{PREFIX}session-phones"  # hash: phone number -> session id
RECONCILE_REQUESTED = f"{PREFIX}reconcile:requested"
# hash: session id -> when the registry first saw it connected (epoch s): its warm-up's day 0
SESSION_FIRST_CONNECTED = f"{PREFIX}session-first-connected"

# Pacing (zapa_bridge.outbound.pacing). With ZAPA_ENV=test only: seconds added to the
# pacing clock, so a test can move workers to another day.
PACING_TEST_CLOCK = f"{PREFIX}pacing:test-clock"

# Operations.
METRICS_COUNTERS = f"{PREFIX}metrics:counters"
METRICS_SEND_LATENCY = f"{PREFIX}metrics:send-latency"
HEALTH_SNAPSHOT = f"{PREFIX}health:snapshot"
HEALTH_BRIDGE_STARTED = f"{PREFIX}health:bridge-started"
# Polling zapw's GET /events for events whose webhook never came (zapa_bridge.inbound.recovery).
EVENTS_POLL_LOCK = f"{PREFIX}events-poll:lock"  # lock: one poll at a time
EVENTS_SIGHTINGS = f"{PREFIX}events-poll:sightings"  # hash: event in the ring -> first seen
EVENTS_DELIVERY = f"{PREFIX}events-poll:delivery"  # hash: last missed / arrived webhook
METRICS_RECOVERED = f"{PREFIX}metrics:recovered"  # hash: session -> events recovered
WORKERS_PATTERN = f"{PREFIX}workers:*"
# Crash recovery (zapa_bridge.outbound.crash_recovery).
OWNERS = f"{PREFIX}owners"  # set: worker processes that may hold messages
CRASH_WATCH_LOCK = f"{PREFIX}crash-watch:lock"  # string: the watcher of this tick
CRASH_SEEN = f"{PREFIX}crash-seen"  # string: when a dead worker was last found (epoch s)

# Kept by kombu (unacked messages) and redbeat (the schedule), under our prefix.
UNACKED = f"{PREFIX}unacked"
UNACKED_INDEX = f"{PREFIX}unacked_index"
UNACKED_MUTEX = f"{PREFIX}unacked_mutex"
BEAT_PREFIX = f"{PREFIX}beat:"
BEAT_LOCK = f"{PREFIX}beat:lock"

# `key_part(s)`: the same escaping as `part`, for the scripts that build a key themselves.
LUA_KEY_PART = scripts.read(__package__, "key_part.lua")


def part(value: str) -> str:
    """One part of a key: '%' and ':' escaped, anything else as it is."""
    return value.replace("%", "%25").replace(":", "%3A")


def unpart(value: str) -> str:
    """The value `part` escaped."""
    return value.replace("%3A", ":").replace("%25", "%")


def join(*parts: str) -> str:
    """Parts escaped and joined: different tuples, different strings."""
    return ":".join(part(value) for value in parts)


def message(message_id: str) -> str:
    """Hash: an outbound message's status record."""
    return MESSAGE_PREFIX + part(message_id)


def message_body(message_id: str) -> str:
    """String: the message a status record carries (its JSON), kept apart from the record so
    that every value of the record stays short enough for Redis's compact hash encoding."""
    return MESSAGE_BODY_PREFIX + part(message_id)


def lane(lane_id: str) -> str:
    """Zset: the messages waiting behind a lane's head, by when they joined."""
    return LANE_PREFIX + part(lane_id)


def held(session: str) -> str:
    """Zset: a session's held messages, by when they were held."""
    return HELD_PREFIX + part(session)


def bridge(session: str, bridge_message_id: str) -> str:
    """String: our message id for the id zapw gave a send on `session`."""
    return BRIDGE_PREFIX + join(session, bridge_message_id)


def kept_receipts(session: str, bridge_message_id: str) -> str:
    """Hash: receipts for a send of `session` that came before its record knew zapw's id
    (status -> note), kept for the `sent` change to apply."""
    return f"{PREFIX}receipts:" + join(session, bridge_message_id)


def idempotency(idempotency_key: str) -> str:
    """String: the message that owns an idempotency key."""
    return f"{PREFIX}idempotency:" + part(idempotency_key)


def rate(session: str) -> str:
    """Zset: a session's recent sends (its sliding rate log)."""
    return f"{PREFIX}rate:" + part(session)


def recipient_rate(session: str, recipient: str) -> str:
    """Zset: the recent sends of a session to one recipient (its sliding pacing log)."""
    return f"{PREFIX}pacing:to:" + join(session, recipient)


def daily_sent(session: str, day: int) -> str:
    """Counter: messages of a session let through on UTC day `day` (days since the epoch)."""
    return f"{PREFIX}pacing:sent:" + join(session, str(day))


def daily_holds(session: str, day: int) -> str:
    """Counter: messages of a session held for its daily limit on `day`, in the order they
    were held (the order they are released in)."""
    return f"{PREFIX}pacing:held:" + join(session, str(day))


def daily_full(day: int) -> str:
    """Set: the sessions that reached their daily limit on `day`."""
    return f"{PREFIX}pacing:full:{day}"


def seen(dedupe_key: str) -> str:
    """String: a webhook event already taken in."""
    return SEEN_PREFIX + part(dedupe_key)


def inbound_id(session: str, message_id: str) -> str:
    """The id of an inbound message: its session and zapw's id, each escaped."""
    return join(session, message_id)


def inbound(inbound_id: str) -> str:
    """Hash: an inbound message as received. `inbound_id` is one made by `inbound_id()`,
    whose ':' is the one between its two escaped parts."""
    return f"{PREFIX}in:{inbound_id}"


def burst_sender(session: str, sender: str) -> str:
    """One sender on one session, as `BURSTS_DUE` holds it (`burst_sender_parts` reads it)."""
    return join(session, sender)


def burst_sender_parts(member: str) -> tuple[str, str]:
    """The session and sender of a `burst_sender` value."""
    session, sender = member.split(":")
    return unpart(session), unpart(sender)


def burst(session: str, sender: str) -> str:
    """List: a sender's inbound messages waiting to be handed on as bursts, in order."""
    return f"{PREFIX}burst:" + join(session, sender)


def burst_state(session: str, sender: str) -> str:
    """Hash: the sender's latest burst (`open`: its id, `first`, `close`: epoch s)."""
    return f"{PREFIX}burst-state:" + join(session, sender)


def inbound_dead(letter_id: str) -> str:
    """Hash: one inbound dead letter."""
    return f"{PREFIX}in-dead:" + part(letter_id)


def worker(hostname: str) -> str:
    """String: a worker's heartbeat."""
    return f"{PREFIX}workers:" + part(hostname)


def alive(owner: str) -> str:
    """String, a few seconds' TTL: a worker process is alive."""
    return f"{PREFIX}alive:" + part(owner)


def admin_session(session_digest: str) -> str:
    """String: an admin page session, by the SHA-256 of the id its cookie holds."""
    return f"{PREFIX}admin-session:" + part(session_digest)


def auth_failures(scope: str, address: str) -> str:
    """Counter: failed credential checks of one client address in one scope, this window."""
    return f"{PREFIX}auth-failures:" + join(scope, address)
