"""Publish simulated e-commerce events to the archived exchange.

    python event_simulator.py                       # a steady ~5 events/s until Ctrl-C
    python event_simulator.py --rate 200 --count 5000 --seed 42
    python event_simulator.py --rate 0 --duration 10 --types OrderPlaced,OrderShipped

With --count it exits 0 once that many distinct events are confirmed by the broker (the events
unconfirmed when a connection drops are sent again after reconnecting, and count once); stopped
before that (Ctrl-C, SIGTERM, --duration) it says how many were confirmed and exits 1.

The broker and exchange come from the settings (AMQP_URL, EXCHANGE). The work is done by
eventreplay.simulator; this file only reads the command line, shows progress and handles signals.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from typing import Optional

import typer

from eventreplay.logs import configure_logging
from eventreplay.schema import EVENT_TYPES
from eventreplay.settings import get_settings
from eventreplay.simulator import EventFactory, SimulationPlan, simulate

log = logging.getLogger("event_simulator")
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@app.command()
def main(
    rate: float = typer.Option(5.0, min=0, help="Events per second; 0 = as fast as the broker confirms."),
    count: Optional[int] = typer.Option(
        None, min=1, help="Stop after this many distinct events confirmed (exit 1 if stopped before)."
    ),
    duration: Optional[float] = typer.Option(None, min=0, help="Stop after this many seconds."),
    seed: Optional[int] = typer.Option(None, help="Seed for a reproducible run (same users, ids, orders)."),
    types: Optional[str] = typer.Option(
        None, help=f"Comma-separated event types to emit (default all): {', '.join(EVENT_TYPES)}."
    ),
) -> None:
    """Publish simulated e-commerce events (users, sessions, carts, orders through delivery, reviews)."""
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        factory = EventFactory(seed, types=types.split(",") if types else None)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--types") from None

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # finish cleanly: stop publishing, wait for the outstanding confirms, print the summary
        signal.signal(signum, lambda *_: stop.set())

    plan = SimulationPlan(exchange=settings.exchange, rate=rate, count=count, duration=duration)
    log.info(
        "publishing to exchange %r (seed %d, rate %s, count %s, duration %s)",
        settings.exchange, factory.seed, f"{rate:g}/s" if rate else "unlimited",
        count or "unlimited", f"{duration:g} s" if duration else "unlimited",
    )
    if sys.stderr.isatty():
        report = _with_progress_bar(settings.amqp_url, factory, plan, stop)
    else:
        report = simulate(settings.amqp_url, factory, plan, stop=stop)
    log.info("%s", report.summary())
    if count is not None and report.confirmed < count:
        # a run asked for N events must not look complete with fewer (Ctrl-C, SIGTERM, --duration)
        log.error("stopped before the count: %d of %d events confirmed", report.confirmed, count)
        raise typer.Exit(1)


def _with_progress_bar(amqp_url, factory, plan, stop):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]publishing"), BarColumn(), MofNCompleteColumn(), TextColumn("confirmed"),
        TimeElapsedColumn(), TextColumn("{task.fields[rate]}"), transient=False,
    ) as bar:
        task = bar.add_task("publish", total=plan.count, rate="")

        def show(published: int, confirmed: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0
            bar.update(task, completed=confirmed, rate=f"{confirmed / elapsed:,.0f}/s" if elapsed else "")

        return simulate(amqp_url, factory, plan, stop=stop, progress=show)


if __name__ == "__main__":
    app()
