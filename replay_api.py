"""The Replay API: `uvicorn replay_api:app`, or `python replay_api.py` (API_HOST:API_PORT)."""
from eventreplay.api import create_app
from eventreplay.settings import get_settings

app = create_app()

if __name__ == "__main__":
    import uvicorn

    settings = get_settings()
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level=settings.log_level.lower())
