"""Export, import and copy (eventreplay/archive_io): the commands run as an operator runs them
(`python -m eventreplay.archive_io ...`), on real stores of both backends and real files; the copy's
resume after a real SIGKILL of the copying process."""
from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from eventreplay.archive_io.jsonl import BadLine, decode_line, encode_line
from eventreplay.archive_io.verify import verify
from eventreplay.replay.spec import ReplaySpec
from eventreplay.store import EventQuery, EventStore, NewEvent, StoredEvent, open_store
from tests.support.amqp import drain
from tests.support.api import wait_job
from tests.support.events import T0, new_event, series
from tests.support.processes import ROOT, ProgramProcess, program_env
from tests.support.stores import private_esdb_url, seed
from tests.support.waiting import wait_for

FIELDS = ("event_id", "event_type", "timestamp", "routing_key", "exchange", "received_at", "properties", "body")
ODD_BODIES = [
    b"\xff\xfe\x00 not UTF-8 at all",  # base64 in the file
    '{"event_id": "x", "note": "caf\u00e9 \u2028 \\"quoted\\" \\u00e9 \U0001f600"}'.encode(),  # escapes kept as written
    b'{"spaced" :  1 ,\n "tab":\t2}',  # whitespace a re-serialisation would lose
    b"",
]


# -- helpers ---------------------------------------------------------------------------------------

def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -m eventreplay.archive_io ARGS` as an operator runs it (stdin closed)."""
    done = subprocess.run([sys.executable, "-m", "eventreplay.archive_io", *args], cwd=ROOT,
                          env=env or program_env(), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in done.stderr.decode(errors="replace"), done.stderr.decode(errors="replace")
    return done


def ok(done: subprocess.CompletedProcess) -> str:
    stderr = done.stderr.decode(errors="replace")
    assert done.returncode == 0, stderr
    return stderr


def reported_digest(stderr: str) -> str:
    return stderr.rsplit(": ", 1)[1].split()[0]


def sha256(bodies) -> str:
    return hashlib.sha256(b"".join(bodies)).hexdigest()


def everything(store: EventStore) -> list[StoredEvent]:
    return list(store.read(EventQuery()))


def other_store_url(store_url: str, tmp_path: Path, request) -> str:
    """A second empty store of the same backend as `store_url`."""
    if store_url.startswith("sqlite:"):
        return f"sqlite:///{tmp_path / 'other.db'}"
    return private_esdb_url(request.getfixturevalue("esdb_base_url"))


def mixed_events(count: int) -> list[NewEvent]:
    """Events of several types, a minute apart, with payload fields to match on, and odd bodies."""
    types = ["OrderPlaced", "PaymentProcessed", "OrderShipped", "UserLoggedIn"]
    events = [new_event(types[i % 4], timestamp=T0 + timedelta(minutes=i), order_id=f"o{i % 5}", user_id=f"u{i % 2}")
              for i in range(count)]
    events += [new_event("OddBody", body=body, timestamp=T0 + timedelta(minutes=count + i),
                         properties={"headers": {"x-n": i, "big": 2**70}, "content_type": "application/octet-stream"})
               for i, body in enumerate(ODD_BODIES)]
    return events


def same_records(a, b) -> None:
    for name in FIELDS:
        assert getattr(a, name) == getattr(b, name), (name, a.event_id)


# -- the line format -------------------------------------------------------------------------------

@pytest.mark.parametrize("body", ODD_BODIES + [b'{"event_id": "e", "n": 1}'])
def test_a_line_carries_any_body_byte_for_byte(body):
    event = new_event("OrderPlaced", body=body, timestamp=T0 + timedelta(microseconds=123456),
                      properties={"headers": {"x-big": 2**70, "x-text": "é"}})
    line = encode_line(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    record = json.loads(line)
    assert ("body" in record) != ("body_base64" in record)
    assert ("body_base64" in record) == (body == ODD_BODIES[0])  # text whenever the bytes are UTF-8
    same_records(decode_line(line), event)


@pytest.mark.parametrize("line, reason", [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b'{"event_type": "A"}', "event_id is missing"),
    (b'{"event_id": "nope"}', "is not a UUID"),
])
def test_a_bad_line_says_why(line, reason):
    with pytest.raises(BadLine, match=reason):
        decode_line(line)


def test_a_line_needs_exactly_one_body_and_valid_times():
    record = json.loads(encode_line(new_event()))
    for change, reason in [({"body_base64": "AAAA"}, "exactly one"), ({"timestamp": "noon"}, "ISO 8601"),
                           ({"properties": []}, "JSON object")]:
        with pytest.raises(BadLine, match=reason):
            decode_line(json.dumps({**record, **change}))
    del record["body"]
    with pytest.raises(BadLine, match="base64"):
        decode_line(json.dumps({**record, "body_base64": "###"}))


# -- export and import -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["archive.jsonl.gz", "archive.jsonl"])
def test_export_import_round_trip_is_byte_identical(store, store_url, tmp_path, request, name):
    source = seed(store, mixed_events(300))
    file = tmp_path / name
    exported = ok(cli("export", str(file), "--store", store_url))
    assert f"exported {len(source):,} events" in exported
    digest = reported_digest(exported)
    assert digest == sha256(e.body for e in everything(store))  # the replay's digest: bodies in store order
    assert (file.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    assert not list(tmp_path.glob("*.partial"))

    target_url = other_store_url(store_url, tmp_path, request)
    imported = ok(cli("import", str(file), "--store", target_url))
    assert f"{len(source):,} new, 0 already present" in imported
    assert reported_digest(imported) == digest
    with open_store(target_url) as target:
        copied = {e.event_id: e for e in everything(target)}
        assert len(copied) == len(source)
        for event in everything(store):
            same_records(copied[event.event_id], event)  # bodies byte for byte, and everything else
        # the target's bodies taken in the source's order: the same digest
        assert sha256(copied[e.event_id].body for e in everything(store)) == digest

        again = ok(cli("import", str(file), "--store", target_url))
        assert f"0 new, {len(source):,} already present" in again
        assert len(everything(target)) == len(source)

    # exporting the copy gives the same lines (EventStoreDB may store a batch grouped by stream)
    reexport = tmp_path / ("again-" + name)
    ok(cli("export", str(reexport), "--store", target_url))
    read = (lambda p: gzip.decompress(p.read_bytes())) if name.endswith(".gz") else Path.read_bytes
    first, second = read(file).splitlines(), read(reexport).splitlines()
    assert sorted(first) == sorted(second)
    if store_url.startswith("sqlite:"):
        assert first == second


FILTERS = [
    ({"event_types": ["OrderPlaced", "OrderShipped"]}, ["-t", "OrderPlaced", "--event-type", "OrderShipped"]),
    ({"since": (T0 + timedelta(minutes=5)).isoformat(), "until": "2024-05-01T12:30:00"},
     ["--since", (T0 + timedelta(minutes=5)).isoformat(), "--until", "2024-05-01T12:30:00"]),
    ({"match": {"order_id": "o3", "user_id": "u1"}}, ["--match", '{"order_id": "o3", "user_id": "u1"}']),
    ({"event_types": ["PaymentProcessed", "UserLoggedIn"], "since": "2024-05-01T12:10:00+02:00", "limit": 7},
     ["-t", "PaymentProcessed", "-t", "UserLoggedIn", "--since", "2024-05-01T12:10:00+02:00", "--limit", "7"]),
]


def test_filters_export_what_the_replay_reads(store, store_url, tmp_path):
    events = seed(store, mixed_events(80))
    for fields, options in FILTERS:
        spec = ReplaySpec(target_queue="q", **fields)
        wanted = list(store.read(spec.query(up_to_position=store.last_position())))
        # and independently of the store: the same filters written out by hand
        kept = [e for e in events if spec.query().matches(e)][: fields.get("limit")]
        assert [e.event_id for e in wanted] == [e.event_id for e in kept] and wanted, fields

        done = cli("export", "-", "--store", store_url, *options)
        lines = done.stdout.splitlines()
        assert [decode_line(line).body for line in lines] == [e.body for e in wanted], fields
        assert reported_digest(ok(done)) == sha256(e.body for e in wanted)


def test_export_sends_what_a_replay_sends(api, api_store, store_url, target_queue, amqp_url):
    """The real Replay API, replaying into a real queue: the export's lines carry the same bodies,
    in the same order, and its digest is the replay job's."""
    seed(api_store, mixed_events(80))
    fields, options = FILTERS[3]
    response = api.post("/replay", json={**fields, "target_queue": target_queue})
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json()["id"])
    assert job["state"] == "completed" and job["confirmed"] == 7, job
    sent = [m.body for m in drain(amqp_url, target_queue, expected=job["confirmed"])]

    done = cli("export", "-", "--store", store_url, *options)
    assert [decode_line(line).body for line in done.stdout.splitlines()] == sent
    assert reported_digest(ok(done)) == job["digest"]


def test_import_reports_bad_lines_and_skips_them(tmp_path):
    good = [encode_line(e) for e in series(5)]
    lines = [good[0], b"{broken\n", good[1], b"\n", b'{"event_id": "7"}\n', good[2], good[3] + good[3], good[4]]
    file = tmp_path / "mixed.jsonl"
    file.write_bytes(b"".join(lines))
    url = f"sqlite:///{tmp_path / 'events.db'}"

    done = cli("import", str(file), "--store", url)
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert f"{file}:2: not JSON" in stderr and f"{file}:5: event_id" in stderr
    assert "5 new, 1 already present; 2 bad lines skipped" in stderr  # lines 7 and 8: good[3] twice
    with open_store(url) as store:
        assert len(everything(store)) == 5

    strict = cli("import", str(file), "--store", f"sqlite:///{tmp_path / 'strict.db'}", "--strict")
    assert strict.returncode == 1 and "stopped at line 2 (--strict)" in strict.stderr.decode()
    with open_store(f"sqlite:///{tmp_path / 'strict.db'}") as store:
        assert [e.body for e in everything(store)] == [decode_line(good[0]).body]


def test_a_cut_gzip_file_is_an_error_after_what_it_held(tmp_path):
    whole = gzip.compress(b"".join(encode_line(e) for e in series(2000)))
    file = tmp_path / "cut.jsonl.gz"
    file.write_bytes(whole[: len(whole) // 2])
    done = cli("import", str(file), "--store", f"sqlite:///{tmp_path / 'events.db'}")
    assert done.returncode == 1
    assert "gzip data is damaged or cut short" in done.stderr.decode()


@pytest.mark.parametrize("args, says", [
    (["export", "--store", "mysql://db/events"], "is not supported"),
    (["export", "--store", "sqlite:///{tmp}/missing.db"], "no SQLite store at"),
    (["import", "-", "--store", "esdb://127.0.0.1:1?Tls=false"], "EventStoreDB store: ping failed"),
    (["export", "--store", "sqlite:///{tmp}/events.db", "--since", "yesterday"], "--since"),
    (["export", "--store", "sqlite:///{tmp}/events.db", "--match", "{order_id: 1}"], "--match"),
    (["export", "{tmp}/no/such/folder/x.jsonl", "--store", "sqlite:///{tmp}/events.db"], "cannot write"),
    (["import", "{tmp}/missing.jsonl", "--store", "sqlite:///{tmp}/events.db"], "cannot read"),
    (["copy", "--from", "sqlite:///{tmp}/events.db", "--to", "sqlite:///{tmp}/events.db"], "same store"),
])
def test_bad_input_is_one_readable_error(tmp_path, args, says):
    with open_store(f"sqlite:///{tmp_path / 'events.db'}") as store:
        seed(store, series(3))
    done = cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])  # cli() checks: no traceback
    assert done.returncode != 0
    assert says in done.stderr.decode()


# -- copy ------------------------------------------------------------------------------------------

def copy_env(tmp_path: Path) -> dict[str, str]:
    return program_env(RUN_DIR=str(tmp_path / "run"))


def state_of(tmp_path: Path) -> dict | None:
    files = list((tmp_path / "run" / "copies").glob("*.json"))
    return json.loads(files[0].read_text()) if files else None


def test_copy_sqlite_to_each_backend_is_verified(store_url, tmp_path):
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    with open_store(source_url) as source:
        events = seed(source, mixed_events(600))
    env = copy_env(tmp_path)
    done = ok(cli("copy", "--from", source_url, "--to", store_url, "--batch-size", "150", env=env))
    assert f"copied {len(events):,} events" in done and f"{len(events):,} new in the target" in done
    assert "verified in" in done and f": {len(events):,} events in the source, {len(events):,} in the target" in done
    assert reported_digest(done) == sha256(e.body for e in events)
    with open_store(store_url) as target:
        by_id = {e.event_id: e for e in everything(target)}
    assert len(by_id) == len(events)
    for event in events:
        same_records(by_id[event.event_id], event)
    state = state_of(tmp_path)
    assert state["completed"] and state["copied"] == len(events) and state["verified"]["ok"]

    # again: nothing left to copy, still verified; then the source grows and a re-run catches up
    again = ok(cli("copy", "--from", source_url, "--to", store_url, env=env))
    assert "copied 0 events" in again and "verified" in again
    with open_store(source_url) as source:
        more = seed_more(source, series(40, "OrderPlaced", start=T0 + timedelta(days=1)))
    caught_up = ok(cli("copy", "--from", source_url, "--to", store_url, env=env))
    assert f"copied {len(more)} events" in caught_up and "verified" in caught_up


def seed_more(store: EventStore, events: list[NewEvent]) -> list[NewEvent]:
    assert store.append(events) == len(events)
    return events


def test_copy_refuses_a_non_empty_target_and_fails_verification_on_a_difference(tmp_path):
    source_url, target_url = (f"sqlite:///{tmp_path / n}" for n in ("source.db", "target.db"))
    with open_store(source_url) as source:
        seed(source, series(50))
    with open_store(target_url) as target:
        target.append([new_event("Stranger")])
    env = copy_env(tmp_path)
    refused = cli("copy", "--from", source_url, "--to", target_url, env=env)
    assert refused.returncode == 1 and "already holds events" in refused.stderr.decode()

    # with a checkpoint (an earlier run), the stranger is found by the verification
    done = cli("copy", "--from", source_url, "--to", f"sqlite:///{tmp_path / 'fresh.db'}", env=env)
    ok(done)
    with open_store(f"sqlite:///{tmp_path / 'fresh.db'}") as fresh:
        fresh.append([new_event("Stranger")])
    mismatch = cli("copy", "--from", source_url, "--to", f"sqlite:///{tmp_path / 'fresh.db'}", env=env)
    stderr = mismatch.stderr.decode()
    assert mismatch.returncode == 3, stderr
    assert "verification FAILED" in stderr and "50 events in the source, 51 in the target" in stderr
    assert "the target holds 1 event(s) not in the source" in stderr


def test_verify_names_missing_changed_and_extra_events(tmp_path):
    events = series(20)
    with open_store(f"sqlite:///{tmp_path / 'a.db'}") as source, open_store(f"sqlite:///{tmp_path / 'b.db'}") as target:
        seed(source, events)
        changed = NewEvent(**{**{f: getattr(events[4], f) for f in FIELDS}, "body": b'{"changed": true}'})
        stranger = new_event("Stranger")
        target.append([e for e in events if e is not events[9]][:4] + [changed] + events[5:9] + events[10:]
                      + [stranger])
        result = verify(source, target, up_to_position=source.last_position())
    assert not result.ok and result.source_events == 20 and result.target_events == 20
    text = "\n".join(result.problems)
    assert f"event {events[4].event_id} differs in the target: body" in text
    assert f"event {events[9].event_id} (source position 10) is missing from the target" in text
    assert "the target holds 1 event(s) not in the source" in text and stranger.event_id in text


def test_copy_resumes_after_sigkill_with_every_event_once(store_url, tmp_path):
    total = 20_000
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    with open_store(source_url) as source:
        # a type of its own: type-filtered reads of the shared EventStoreDB need not wade through these
        events = seed(source, series(total, "ArchiveCopyProbe", step=timedelta(milliseconds=10)), batch=5000)
    env = copy_env(tmp_path)
    command = [sys.executable, "-m", "eventreplay.archive_io", "copy", "--from", source_url, "--to", store_url,
               "--batch-size", "200"]
    copying = ProgramProcess("copy", command, env, tmp_path / "copy.log").start()
    try:
        def progressed():
            state = state_of(tmp_path)
            return state is not None and state["copied"] > 0
        wait_for(progressed, timeout=120, interval=0.01, what="the copy's checkpoint to show progress")
        copying.kill()  # SIGKILL: no cleanup of any kind
    finally:
        copying.kill()
    killed_at = state_of(tmp_path)
    assert 0 < killed_at["copied"] < total and not killed_at["completed"], (killed_at, copying.output())

    done = ok(cli(*command[3:], env=env))
    assert f"continuing after source position {killed_at['last_position']}" in done
    assert f"{total:,} in all" in done
    assert "verified in" in done and f": {total:,} events in the source, {total:,} in the target" in done
    with open_store(store_url) as target:
        stored = everything(target)
    assert len(stored) == total and len({e.event_id for e in stored}) == total  # each event exactly once
    by_id = {e.event_id: e.body for e in stored}
    assert sha256(by_id[e.event_id] for e in events) == sha256(e.body for e in events) == reported_digest(done)
