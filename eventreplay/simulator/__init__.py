"""The event simulator: a simulated shop's events (events.py, with shop.py and catalog.py) and their
publishing with confirms through reconnects (publishing.py). `event_simulator.py` is its command."""
from eventreplay.simulator.events import EventFactory, OutgoingEvent, SteadyClock
from eventreplay.simulator.publishing import (
    PendingEvents, PublishInterrupted, PublishReport, SimulationPlan, publish_events, simulate,
)

__all__ = [
    "EventFactory", "OutgoingEvent", "PendingEvents", "PublishInterrupted", "PublishReport", "SimulationPlan",
    "SteadyClock", "publish_events", "simulate",
]
