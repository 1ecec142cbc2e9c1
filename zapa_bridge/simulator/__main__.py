"""`python -m zapa_bridge.simulator`: a stand-alone zapw for manual runs and other processes.

It prints one line saying where it listens and serves until SIGINT or SIGTERM, then stops
cleanly (timers and webhook retries cancelled, socket closed) and, as zapw, posts no
`session.disconnected` for the sessions it ends. By default it is zapw with a phone behind
it (receipts arrive as `message.sent` without a status); `--mock` is zapw's
USE_MOCK_WHATSAPP=true (no receipts, nothing survives a restart); `--auto-status
delivered,read` is a zapw whose receipt bug is fixed.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from zapa_bridge.simulator.config import SimulatorConfig, with_changes
from zapa_bridge.simulator.server import Simulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m zapa_bridge.simulator",
                                     description="Simulate the zapw WhatsApp bridge over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000, help="0 picks a free port")
    parser.add_argument("--webhook-url", help="where events are posted (none: nothing is)")
    parser.add_argument("--no-webhooks", action="store_true",
                        help="post nothing even with --webhook-url, as zapw with "
                             "ENABLE_WEBHOOK unset; GET /events still lists every event")
    parser.add_argument("--api-key", help="require this key, as zapw's API_KEY")
    parser.add_argument("--connect-delay", type=float, default=2.0,
                        help="seconds until a new session connects; negative: never by itself")
    parser.add_argument("--phone", default="1234567890", help="the connected account's number")
    parser.add_argument("--name", default="Test User", help="the connected account's name")
    parser.add_argument("--session", dest="sessions", action="extend", nargs="+", default=[],
                        metavar="ID", help="create these sessions at start")
    parser.add_argument("--mock", action="store_true",
                        help="act as zapw's mock mode (USE_MOCK_WHATSAPP=true): no receipt "
                             "after a send, no session kept across a restart")
    parser.add_argument("--auto-status", default="",
                        help="act as a fixed zapw, posting these receipts after each send: "
                             "delivered,read (default: every receipt is a message.sent "
                             "without status, as real zapw posts them)")
    parser.add_argument("--webhook-attempts", type=int, default=3)
    parser.add_argument("--webhook-retry-delay", type=float, default=1.0)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    base = SimulatorConfig(host=args.host, port=args.port, sessions=tuple(args.sessions))
    return with_changes(base, {
        "flavour": "mock" if args.mock else "real",
        "webhook_url": args.webhook_url, "webhooks_enabled": not args.no_webhooks,
        "api_key": args.api_key,
        "connect_delay": None if args.connect_delay < 0 else args.connect_delay,
        "phone": args.phone, "name": args.name, "auto_status": args.auto_status,
        "webhook_attempts": args.webhook_attempts,
        "webhook_retry_delay": args.webhook_retry_delay,
    })


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = build_config(args)
    except ValueError as error:
        print(f"invalid option: {error}", file=sys.stderr)
        return 2
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    simulator = Simulator(config)
    try:
        simulator.start()
    except OSError as error:
        print(f"cannot listen on {args.host}:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"zapw simulator listening on {simulator.url} (control API at {simulator.url}/_sim/)",
          flush=True)
    try:
        stopping.wait()
    finally:
        simulator.stop()
    print("zapw simulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
