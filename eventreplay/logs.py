"""Logging for every entry point, at the level LOG_LEVEL names.

One line per record on stderr, so that honcho, systemd and docker logs show it as it is. pika logs
connection failures at ERROR with a traceback; our own code already reports those as one clear line
(and retries), so pika is quieted unless we are debugging.
"""
from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str | None = None) -> None:
    if level is None:
        from eventreplay.settings import get_settings

        level = get_settings().log_level
    level = level.upper()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level, logging.INFO))
    logging.getLogger("pika").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)
