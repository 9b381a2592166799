"""The RabbitMQ adapter (pika): connections (connection.py), the archive topology (topology.py),
AMQP properties on the wire (properties.py), and publishing with confirms (publisher.py, with the
pure bookkeeping of confirms in confirms.py)."""
from eventreplay.broker.confirms import ConfirmTracker
from eventreplay.broker.connection import (
    CONNECTION_ERRORS, amqp_urls, broker_address, close_quietly, connect, connect_until_stopped, connected_node,
    connection_parameters,
)
from eventreplay.broker.properties import (
    REPLAY_ID_HEADER, event_properties, is_replay, properties_from_dict, properties_to_dict, republished_properties,
)
from eventreplay.broker.publisher import ConfirmedPublisher, PublishFailed
from eventreplay.broker.topology import (
    DEFAULT_QUEUE_TYPE, QUEUE_TYPES, ArchiveTopology, QueueStats, declare_exchange, declare_queue, queue_arguments,
    queue_stats,
)

__all__ = [
    "CONNECTION_ERRORS", "DEFAULT_QUEUE_TYPE", "QUEUE_TYPES", "REPLAY_ID_HEADER", "ArchiveTopology", "ConfirmTracker",
    "ConfirmedPublisher", "PublishFailed", "amqp_urls", "broker_address", "close_quietly", "connect",
    "connect_until_stopped", "connected_node", "connection_parameters", "declare_exchange", "declare_queue",
    "QueueStats", "queue_arguments", "queue_stats",
    "event_properties", "is_replay", "properties_from_dict", "properties_to_dict", "republished_properties",
]
