"""Fixtures of the simulator's tests: simulators stopped after each test, and a webhook
receiver they post to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.simulator.support import Receiver, Simulators
from zapa_bridge.simulator import Simulator


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def simulators() -> Iterator[Simulators]:
    started = Simulators()
    yield started
    started.stop_all()


@pytest.fixture
def sim(simulators: Simulators, receiver: Receiver) -> Simulator:
    """A simulator whose webhooks reach `receiver`."""
    return simulators.start(webhook_url=receiver.url)
