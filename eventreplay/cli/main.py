"""`eventreplay`: one command line for the operator's tools (`eventreplay --help`)."""
from __future__ import annotations

import typer

from eventreplay.archive_io import cli as archive_io
from eventreplay.cli import browse, dead_letters, replays, upkeep

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="eventreplay: the archive's operator tools. Settings come from the environment and .env "
                       "(REPLAY_API_URL and REPLAY_API_KEY for the replay and dead-letter commands).")


@app.callback()
def _setup() -> None:
    from eventreplay.logs import configure_logging

    configure_logging("WARNING")  # library warnings only; the commands speak for themselves


# through the Replay API (REPLAY_API_URL)
app.command()(replays.replay)
app.command()(replays.jobs)
app.command()(replays.job)
app.command()(replays.cancel)
app.command()(replays.resume)
app.command()(browse.events)
app.command("dead-letters")(dead_letters.dead_letters)
app.command()(dead_letters.redrive)
app.command()(dead_letters.discard)
# on the store itself (EVENT_STORE_URL)
app.command()(upkeep.archive)
app.command()(upkeep.reindex)
app.command()(upkeep.prune)
app.command()(archive_io.export)
app.command("import")(archive_io.import_)
app.command()(archive_io.copy)


def main() -> None:
    app()
