"""The Replay API (FastAPI): `create_app(settings)` builds it."""
from eventreplay.api.app import create_app

__all__ = ["create_app"]
