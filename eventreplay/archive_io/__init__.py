"""The archive out of and into stores: export to JSON Lines, import from them, copy between stores.

    jsonl.py       the line format, both ways (one line per event; the body byte for byte)
    files.py       files and stdin/stdout, gzip, atomic writes
    export.py      a replay's filters and order -> lines, with the replay's digest
    importing.py   lines -> batches appended (the store deduplicates); bad lines reported
    copy.py        store -> store in batches, resumable from a checkpoint
    checkpoint.py  the copy's durable state file (and its lock)
    verify.py      source and target compared event by event: counts and digests
    stores.py      opening stores from URLs, appends retried, URLs without passwords
    progress.py    the rich progress bar on a terminal, lines beside it
    cli.py         `python -m eventreplay.archive_io export|import|copy` (typer)
"""
