"""The operator's command line, `eventreplay` as `./run install_dependencies` installs it into
.venv/bin, against a real Replay API process (the seeded one of tests/support/seeded_api.py, which
wants an API key) publishing to the real broker. Each command runs as a process of its own, from a
folder outside the checkout, with REPLAY_API_URL / REPLAY_API_KEY in its environment."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.support.amqp import declare_queue, delete_queue, drain, publish_raw, queue_depth, queue_exists
from tests.support.ingest import consumer_env
from tests.support.names import unique
from tests.support.processes import ROOT, consumer_program, program_env, start_api
from tests.support.seeded_api import API_KEY, SEED
from tests.support.waiting import wait_for

EVENTREPLAY = Path(sys.executable).parent / "eventreplay"  # the console script of this venv


@pytest.fixture(scope="module", autouse=True)
def installed_script():
    if not EVENTREPLAY.exists():
        pytest.fail(f"{EVENTREPLAY} is missing: `./run --install --force` installs the command line", False)


@pytest.fixture
def cli(seeded_api, tmp_path):
    """Runs `eventreplay ARGS` against the seeded API; returns the finished process."""
    def run(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        environment = program_env(REPLAY_API_URL=seeded_api.url, REPLAY_API_KEY=API_KEY, **env)
        done = subprocess.run([str(EVENTREPLAY), *args], cwd=tmp_path, env=environment, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        return done
    return run


@pytest.fixture
def new_queue(amqp_url):
    """A unique queue name, not declared (a replay creates it); removed afterwards."""
    queue = unique("cli")
    yield queue
    delete_queue(amqp_url, queue)


def printed(output: str, label: str) -> str:
    """The value of a `label: value` line of the output."""
    return next(line.split(":", 1)[1].strip() for line in output.splitlines() if line.startswith(f"{label}:"))


def test_replay_with_wait_exits_0_and_prints_the_digest_of_what_the_queue_received(cli, seeded_api, amqp_url,
                                                                                     new_queue):
    done = cli("replay", "--event-type", "OrderShipped", "--target-queue", new_queue, "--create-queue", "--wait")

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"completed: {SEED['OrderShipped']} of {SEED['OrderShipped']} events confirmed")
    job = seeded_api.client.get(f"/replays/{printed(done.stdout, 'job')}").json()
    assert job["state"] == "completed" and printed(done.stdout, "digest") == job["digest"]
    received = drain(amqp_url, new_queue, expected=SEED["OrderShipped"])
    assert len(received) == SEED["OrderShipped"]
    assert {json.loads(m.body)["event_type"] for m in received} == {"OrderShipped"}
    assert hashlib.sha256(b"".join(m.body for m in received)).hexdigest() == job["digest"]


def test_a_missing_queue_exits_2_with_the_apis_message_and_starts_nothing(cli, seeded_api, amqp_url):
    queue = unique("cli-missing")
    jobs_before = len(seeded_api.client.get("/replays", params={"limit": 1000}).json())

    done = cli("replay", "--event-type", "OrderShipped", "--target-queue", queue, "--wait")

    assert done.returncode == 2
    assert f"error: queue '{queue}' does not exist" in done.stderr  # the API's own words
    assert "--create-queue" in done.stderr
    assert done.stdout == ""
    assert not queue_exists(amqp_url, queue)
    assert len(seeded_api.client.get("/replays", params={"limit": 1000}).json()) == jobs_before


def test_without_wait_the_job_id_alone_is_printed_and_jobs_lists_it(cli, seeded_api, amqp_url, new_queue):
    declare_queue(amqp_url, new_queue)
    done = cli("replay", "-t", "PaymentProcessed", "-q", new_queue, "--limit", "10")
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    assert f"eventreplay job {job_id}" in done.stderr
    wait_for(lambda: seeded_api.client.get(f"/replays/{job_id}").json()["state"] == "completed", timeout=30,
             what="the replay to complete")

    listed = cli("jobs", "--state", "completed", "--limit", "1000", "--json")
    assert listed.returncode == 0, listed.stderr
    mine = [job for job in json.loads(listed.stdout) if job["id"] == job_id]
    assert len(mine) == 1 and mine[0]["confirmed"] == 10

    table = cli("jobs", "--limit", "1000")
    row = next(line for line in table.stdout.splitlines() if line.startswith(job_id))
    assert row.split()[1:2] == ["completed"] and f"queue '{new_queue}'" in row

    shown = cli("job", job_id)
    assert shown.returncode == 0
    assert printed(shown.stdout, "confirmed") == "10" and printed(shown.stdout, "state") == "completed"


def test_cancel_then_resume_with_wait_delivers_every_event_once(cli, seeded_api, amqp_url, new_queue):
    declare_queue(amqp_url, new_queue)
    count = 300
    started = cli("replay", "-t", "ProductViewed", "-q", new_queue, "--limit", str(count), "--rate", "100")
    job_id = started.stdout.strip()
    wait_for(lambda: seeded_api.client.get(f"/replays/{job_id}").json()["confirmed"] > 0, timeout=30,
             what="the replay under way")

    cancelled = cli("cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith("cancelled: ")
    assert f"eventreplay resume {job_id}" in cancelled.stderr
    again = cli("cancel", job_id)
    assert again.returncode == 2 and "already ended" in again.stderr

    resumed = cli("resume", job_id, "--wait")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith(f"completed: {count} of {count} events confirmed")
    job = seeded_api.client.get(f"/replays/{job_id}").json()
    assert job["runs"] == 2 and printed(resumed.stdout, "digest") == job["digest"]
    ids = [m.properties.message_id for m in drain(amqp_url, new_queue, expected=count)]
    assert len(ids) == count and len(set(ids)) == count


def test_wait_exits_1_when_the_job_is_cancelled_meanwhile(seeded_api, amqp_url, new_queue, tmp_path):
    declare_queue(amqp_url, new_queue)
    env = program_env(REPLAY_API_URL=seeded_api.url, REPLAY_API_KEY=API_KEY)
    waiting = subprocess.Popen([str(EVENTREPLAY), "replay", "-t", "ProductViewed", "-q", new_queue, "--rate", "50",
                                "--wait"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL)
    try:
        def running_job():
            jobs = seeded_api.client.get("/replays", params={"state": "running", "limit": 1000}).json()
            return next((job for job in jobs if job["request"].get("target_queue") == new_queue), None)
        job = wait_for(running_job, timeout=30, what="the replay running")
        seeded_api.client.post(f"/replays/{job['id']}/cancel", headers={"X-API-Key": API_KEY}).raise_for_status()
        out, err = waiting.communicate(timeout=30)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, err
    assert out.startswith("cancelled: ") and f"eventreplay resume {job['id']} --wait" in err


def test_events_filters_through_the_api(cli):
    done = cli("events", "--event-type", "OrderPlaced", "--match", '{"order_id": "ORD-00007"}', "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [(e["event_type"], e["body"]["order_id"]) for e in found] == [("OrderPlaced", "ORD-00007")]

    paged = cli("events", "-t", "ProductViewed", "--limit", "1200", "--json")  # two pages of the API
    positions = [e["position"] for e in json.loads(paged.stdout)]
    assert len(positions) == 1200 and positions == sorted(set(positions))


def test_dry_run_counts_and_publishes_nothing(cli):
    done = cli("replay", "-t", "OrderShipped", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"dry run: {SEED['OrderShipped']} events match; nothing was published")


@pytest.mark.parametrize("args, message", [
    (["--match", "{order_id: 1}"], "Invalid value for --match: not valid JSON"),
    (["--match", "[1]"], "Invalid value for --match: must be a JSON object"),
    (["--limit", "0"], "limit must be an integer between 1 and 1000000000000"),  # the API's 422
    (["--rate", "inf"], "JSON cannot carry"),
])
def test_bad_input_exits_2_with_a_readable_message(cli, seeded_api, args, message):
    jobs_before = len(seeded_api.client.get("/replays", params={"limit": 1000}).json())
    done = cli("replay", "-t", "OrderShipped", "-q", "replayed", *args)
    assert done.returncode == 2
    assert message in " ".join(done.stderr.replace("│", " ").split())
    assert len(seeded_api.client.get("/replays", params={"limit": 1000}).json()) == jobs_before


def test_a_wrong_api_key_exits_2(cli):
    done = cli("cancel", "00000000-0000-0000-0000-000000000000", "--api-key", "wrong")
    assert done.returncode == 2
    assert "API key (REPLAY_API_KEY) is missing or wrong" in done.stderr


def test_an_unreachable_api_exits_3_with_one_readable_line(cli, unused_url):
    started = time.monotonic()
    done = cli("jobs", "--api-url", unused_url)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        f"error: The Replay API at {unused_url} is unreachable (ConnectionError). "
        "Is it running? Start it with: ./run run_replay_api"]
    assert time.monotonic() - started < 10


def test_task_cli_runs_the_installed_command(seeded_api, tmp_path):
    env = program_env(REPLAY_API_URL=seeded_api.url, REPLAY_API_KEY=API_KEY)
    done = subprocess.run([str(ROOT / ".venv/bin/task"), "cli", "--", "replay", "-t", "OrderShipped", "--dry-run"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert f"dry run: {SEED['OrderShipped']} events match" in done.stdout


NO_TIMESTAMP = "invalid OrderPlaced event: timestamp: Field required"


def test_dead_letters_are_listed_redriven_and_discarded(amqp_url, bound_archive, tmp_path):
    """Five events without a timestamp, dead-lettered by a real consumer; the API process serves
    the test's own queues."""
    names, store_url = bound_archive, f"sqlite:///{tmp_path / 'events.db'}"
    queues = {"EXCHANGE": names["exchange"], "ARCHIVE_QUEUE": names["archive_queue"],
              "DEAD_LETTER_QUEUE": names["dead_letter_queue"], "REPLAY_QUEUE": ""}
    api = start_api(store_url, amqp_url, tmp_path / "api.log", api_key=API_KEY, **queues)
    consumer = consumer_program(consumer_env(amqp_url, store_url, names), tmp_path / "consumer.log").start()
    try:
        publish_raw(amqp_url, names["exchange"], [
            ("order-events", json.dumps({"event_id": str(uuid.uuid4()), "event_type": "OrderPlaced"}).encode(), None)
            for i in range(5)])
        wait_for(lambda: queue_depth(amqp_url, names["dead_letter_queue"]) == 5, timeout=30,
                 what="five dead letters")
        env = program_env(REPLAY_API_URL=api.url, REPLAY_API_KEY=API_KEY)

        def cli(*args: str) -> subprocess.CompletedProcess:
            done = subprocess.run([str(EVENTREPLAY), *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=60, stdin=subprocess.DEVNULL)
            assert "Traceback" not in done.stderr, done.stderr
            return done

        listing = json.loads(cli("dead-letters", "--json").stdout)
        assert listing["total"] == 5 and listing["by_reason"] == [{"reason": NO_TIMESTAMP, "count": 5}]
        table = cli("dead-letters")
        assert table.stdout.startswith(f"dead letters: 5 ({NO_TIMESTAMP}: 5)")
        assert sum(line.startswith(tuple(item["id"] for item in listing["items"]))
                   for line in table.stdout.splitlines()) == 5

        unconfirmed = cli("redrive", "--reason", NO_TIMESTAMP)  # not at a terminal, no --yes: nothing done
        assert unconfirmed.returncode == 2 and "--yes" in unconfirmed.stderr
        redriven = cli("redrive", "--reason", NO_TIMESTAMP, "--yes")
        assert redriven.returncode == 0, redriven.stderr
        assert redriven.stdout.startswith("redriven 5; ")
        # still without a timestamp: the consumer refuses them again, they come back
        wait_for(lambda: queue_depth(amqp_url, names["dead_letter_queue"]) == 5, timeout=30,
                 what="the redriven dead letters back")

        gone = cli("discard", "--id", listing["items"][0]["id"], "--yes")  # a dead letter that came back is new
        assert gone.stdout.startswith("discarded 0; 5 remain") and "1 of the given ids" in gone.stderr
        one = json.loads(cli("dead-letters", "--json").stdout)["items"][0]["id"]
        assert cli("discard", "--id", one, "--yes").stdout.startswith("discarded 1; 4 remain")
        assert cli("discard", "--all", "--yes").stdout.startswith("discarded 4; 0 remain")
        assert queue_depth(amqp_url, names["dead_letter_queue"]) == 0
    finally:
        consumer.stop()
        api.stop()
