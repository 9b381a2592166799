"""The RabbitMQ adapter (pika): connections (connection.py), the archive topology (topology.py),
AMQP properties on the wire (properties.py), and publishing with confirms (publisher.py, with the
pure bookkeeping of confirms in confirms.py)."""
from eventreplay.broker.confirms import ConfirmTracker
from eventreplay.broker.connection import (
    CONNECTION_ERRORS, broker_address, close_quietly, connect, connect_until_stopped, connection_parameters,
)
from eventreplay.broker.properties import (
    REPLAY_ID_HEADER, event_properties, is_replay, properties_from_dict, properties_to_dict, republished_properties,
)
from eventreplay.broker.publisher import ConfirmedPublisher, PublishFailed
from eventreplay.broker.topology import ArchiveTopology, declare_exchange

__all__ = [
    "CONNECTION_ERRORS", "REPLAY_ID_HEADER", "ArchiveTopology", "ConfirmTracker", "ConfirmedPublisher", "PublishFailed",
    "broker_address", "close_quietly", "connect", "connect_until_stopped", "connection_parameters", "declare_exchange",
    "event_properties", "is_replay", "properties_from_dict", "properties_to_dict", "republished_properties",
]
