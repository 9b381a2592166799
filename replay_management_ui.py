"""The replay management UI: `python replay_management_ui.py` serves it on UI_HOST:UI_PORT
(127.0.0.1:5000 by default: only this machine, unless UI_HOST says otherwise) with waitress and
the limits of the settings (eventreplay/ui/server.py).

`app` is the WSGI app for any WSGI server (e.g. `gunicorn replay_management_ui:app`).
"""
from eventreplay.settings import get_settings
from eventreplay.ui import create_app

app = create_app()

if __name__ == "__main__":
    from eventreplay.ui.server import serve

    serve(app, get_settings())
