"""Writes that must survive the loss of the master: the record and queue entry of an
accepted send, and the queued event of an answered webhook.

Redis replicates asynchronously: a master that dies a millisecond after answering takes
its last writes with it, and Sentinel promotes a replica that never saw them. `WAIT n t`,
sent on the same connection right after the write (one round trip: a pipeline), returns
once `n` replicas have it, or after `t` ms with how many did. Fewer than asked is
`NotReplicated`: the caller treats it as a Redis that could not take the write (a send
is refused with `QueueUnavailable`, a webhook goes to the local spool), though the write
may still be on the master and reach the replica later; that is why a send should carry an
idempotency key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError


class NotReplicated(redis.RedisError):
    """Fewer replicas confirmed a write than required. A RedisError on purpose: every caller
    already handles a Redis that could not take a write."""


@dataclass(frozen=True, slots=True)
class ReplicaWait:
    """How many replicas must confirm (0: none, WAIT is never sent) and how long to wait."""

    replicas: int = 0
    timeout: float = 0.25  # s

    def wrap(self, script: Script) -> Script | DurableScript:
        """`script` itself when nothing is to be waited for, else a script that waits."""
        return script if self.replicas <= 0 else DurableScript(script, self)


NO_WAIT = ReplicaWait()


class DurableScript:
    """Called as a registered script is (`keys=`, `args=`); runs it, then WAITs."""

    def __init__(self, script: Script, wait: ReplicaWait) -> None:
        self.script = script
        self.wait = wait

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
        client = cast(redis.Redis, self.script.registered_client)  # ours: never a cluster
        try:
            result, acknowledged = self._run(client, keys, args)
        except NoScriptError:  # a new master (a failover) or a restart: its cache is empty
            client.script_load(self.script.script)
            result, acknowledged = self._run(client, keys, args)
        if int(acknowledged) < self.wait.replicas:
            raise NotReplicated(f"{acknowledged} of {self.wait.replicas} replicas confirmed "
                                f"within {self.wait.timeout:g} s")
        return result

    def _run(self, client: redis.Redis, keys: Sequence[Any],
             args: Sequence[Any]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        pipe.evalsha(self.script.sha, len(keys), *keys, *args)
        pipe.wait(self.wait.replicas, round(self.wait.timeout * 1000))
        answers: list[Any] = pipe.execute()
        return answers
