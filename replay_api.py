"""The Replay API: `python replay_api.py` serves it on API_HOST:API_PORT with the limits of the
settings (eventreplay/api/server.py: header and keep-alive timeouts, connection limit).

`app` is the ASGI app for any ASGI server: `uvicorn replay_api:app` works too, with the body limit
and the API key check (they are in the app) but without the header timeout.
"""
from eventreplay.api import create_app
from eventreplay.settings import get_settings

app = create_app()

if __name__ == "__main__":
    from eventreplay.api.server import serve

    serve(app, get_settings())
