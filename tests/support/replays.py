"""Checking what a replay delivered against the store: every event, in order, and how many were sent
again where a run continued after a recorded position (docs/api.md "Guarantees")."""
from __future__ import annotations

from eventreplay.store import EventQuery


def store_order(store) -> tuple[list[str], dict[int, int], bytes]:
    """(event ids in store order, position -> index, all bodies joined) of the whole store."""
    ids, index_of_position, bodies = [], {}, []
    for i, event in enumerate(store.read(EventQuery())):
        ids.append(event.event_id)
        index_of_position[event.position] = i
        bodies.append(event.body)
    return ids, index_of_position, b"".join(bodies)


def delivery_runs(received: list[str], ids: list[str]) -> list[tuple[int, int]]:
    """The received messages as runs of consecutive store indexes: [(first, last), ...]."""
    index = {event_id: i for i, event_id in enumerate(ids)}
    runs: list[list[int]] = []
    for event_id in received:
        i = index[event_id]
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [(first, last) for first, last in runs]


def assert_resumed_delivery(received: list[str], ids: list[str], resumed_after: list[int], bound: int) -> None:
    """Every event, in store order, where each restart of the sequence continues right after a
    recorded position and repeats at most `bound` events; no gap anywhere."""
    runs = delivery_runs(received, ids)
    assert runs[0][0] == 0, "the replay starts with the first matching event"
    assert max(last for _, last in runs) == len(ids) - 1, "the replay reaches the last matching event"
    assert set(received) == set(ids), "every matched event arrived"
    for (_, previous_last), (first, _) in zip(runs, runs[1:]):
        assert first <= previous_last + 1, f"a gap: events {previous_last + 1}..{first - 1} never arrived"
        assert first - 1 in resumed_after, f"a restart at event {first} is not right after a recorded position"
        assert previous_last - first + 1 <= bound, f"{previous_last - first + 1} events sent again (bound {bound})"
    assert len(received) - len(ids) <= bound * len(resumed_after)
    print(f"sent again per restart: {[last - first + 1 for (_, last), (first, _) in zip(runs, runs[1:])]}")
