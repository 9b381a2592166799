"""Archive every event of the exchange (EXCHANGE) into the event store (EVENT_STORE_URL).

    python consumer.py

Settings come from the environment and .env (see .env.example). SIGTERM or Ctrl-C finish the
current batch (stored, then acked) and exit 0; a wrong EVENT_STORE_URL exits 2.
"""
import sys

from eventreplay.ingest.main import main

if __name__ == "__main__":
    sys.exit(main())
