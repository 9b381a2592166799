"""Clients of the project's own services, free of any web framework: the UI and the operator CLI
share them."""
from eventreplay.client.replay_api import ApiError, ReplayApiClient

__all__ = ["ApiError", "ReplayApiClient"]
