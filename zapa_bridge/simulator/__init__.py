"""A faithful zapw simulator: zapw's HTTP API and webhooks, plus a control API under /_sim/.

    from zapa_bridge.simulator import Simulator, SimulatorConfig
    with Simulator(SimulatorConfig(webhook_url=url, connect_delay=0.1)) as sim:
        BridgeClient(sim.url).create_session("s1")

Run it alone with `python -m zapa_bridge.simulator --port 3000 --webhook-url URL`. It
behaves as the real zapw by default (see `config.py` for the flavours: `real`, `mock`, and
a fixed zapw through `auto_status`); `Simulator.restart` restarts it as zapw restarts.
"""

from zapa_bridge.simulator.bridge import STATUS_CODES, SimulatedBridge
from zapa_bridge.simulator.config import SimulatorConfig
from zapa_bridge.simulator.errors import ControlError, SimulatorError, ZapwError
from zapa_bridge.simulator.faults import Faults
from zapa_bridge.simulator.inbound import Inbound
from zapa_bridge.simulator.server import Simulator
from zapa_bridge.simulator.state import SentMessage
from zapa_bridge.simulator.webhooks import Delivery

__all__ = [
    "STATUS_CODES",
    "ControlError",
    "Delivery",
    "Faults",
    "Inbound",
    "SentMessage",
    "SimulatedBridge",
    "Simulator",
    "SimulatorConfig",
    "SimulatorError",
    "ZapwError",
]
