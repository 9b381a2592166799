"""Generated requests against the OpenAPI schema (schemathesis + hypothesis): never a 5xx, and
every error is JSON with a `detail`. Runs against a real uvicorn process on the SQLite store, with
some events archived so that reads return data (the `served_api` fixture)."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES_PER_OPERATION = 25


def _tame(case) -> None:
    # Generated replays must not leave queues behind on the shared broker, nor wait on long jobs.
    if isinstance(case.body, dict):
        case.body["create_queue"] = False
        case.body.pop("speed", None)
        case.body.pop("rate", None)
    if case.query and "wait" in case.query:
        case.query["wait"] = False


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_error_for_generated_requests(served_api, mode):
    schema = schemathesis.openapi.from_dict(served_api.client.get("/openapi.json").json())
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            _tame(case)
            response = case.call(base_url=served_api.url, timeout=30)
            if response.status_code >= 500:
                failures.append(f"{response.status_code} {case.as_curl_command()}: {response.text[:300]}")
            elif response.status_code >= 400:
                assert "detail" in response.json(), response.text

        try:
            check()
        except Unsatisfiable:
            # nothing can be made invalid (an operation without parameters) in negative mode
            assert mode is GenerationMode.NEGATIVE
    assert not failures, "\n".join(failures[:10])
