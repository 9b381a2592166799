"""python -m eventreplay.archive_io export|import|copy (see cli.py)."""
from eventreplay.archive_io.cli import main

main()
