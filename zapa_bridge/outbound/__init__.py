"""Sends: a message validated and recorded, queued in its conversation's turn, held while
its session is offline, delivered through the bridge, retried or dead-lettered."""
