"""Unique names, so that tests sharing one broker and one EventStoreDB run in any order (and two
test runs on one machine) without seeing each other's exchanges, queues or streams."""
from __future__ import annotations

import uuid


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def archive_names(tag: str) -> dict[str, str]:
    """The exchange and queues of one test's archive, named after `tag` (the `names` fixture's
    shape, which consumer_settings, consumer_env and declared_archive take)."""
    return {
        "exchange": f"{tag}-exchange",
        "archive_queue": f"{tag}-archive",
        "dead_letter_queue": f"{tag}-archive.dead-letter",
        "target_queue": f"{tag}-target",
    }
