"""The operator's command line: `eventreplay --help` (or `python -m eventreplay.cli`)."""
