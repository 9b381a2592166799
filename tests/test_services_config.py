"""`python -m services` reads the settings one way: eventreplay.settings for every value, and the
environment plus `.env` (python-dotenv) for "did the user set NAME?".

Each test runs the real CLI in a subprocess whose working folder is a temporary one with its own
`.env` (the file eventreplay.settings reads), and a RUN_DIR of its own, so that neither the checkout's
`.env` nor the shared `.run/services.env` takes part.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from eventreplay.settings import Settings
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[1]

# What the child prints: its environment as `exec` left it, and the settings it reads from there.
SHOW = """
import json, os
from eventreplay.settings import get_settings
s = get_settings()
names = ["EVENT_STORE_URL", "ESDB_URL", "SERVICES_MODE", "API_HOST", "API_PORT", "UI_HOST", "UI_PORT"]
print(json.dumps({"env": {n: os.environ.get(n) for n in names},
                  "settings": {"event_store_url": s.event_store_url, "api_port": s.api_port,
                               "ui_host": s.ui_host}}))
"""


def clean_env(**values: str) -> dict[str, str]:
    """This process's environment without any setting (`./run test` runs under `services exec`, which
    sets some), plus VALUES."""
    names = {name.upper() for name in Settings.model_fields} | {"ESDB_URL", "SERVICES_MODE"}
    env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(values)
    return env


def services(cwd: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "services", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def exec_show(cwd: Path, env: dict[str, str]) -> dict:
    return json.loads(services(cwd, env, "exec", "--", sys.executable, "-c", SHOW).strip().splitlines()[-1])


def write_record(run_dir: Path) -> None:
    """A services.env as `start` writes it in Docker mode."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "services.env").write_text(
        "SERVICES_MODE=docker\n"
        "EVENT_STORE_URL=esdb://localhost:2113?Tls=false\n"
        "ESDB_URL=esdb://localhost:2113?Tls=false\n",
        encoding="utf-8",
    )


def test_a_value_in_dotenv_is_used(tmp_path):
    (tmp_path / ".env").write_text(
        f"RUN_DIR={tmp_path / 'run'}\n"
        "API_PORT=8123\n"
        'export UI_HOST="0.0.0.0"  # all interfaces\n',
        encoding="utf-8",
    )
    shown = exec_show(tmp_path, clean_env())
    assert shown["env"]["API_PORT"] == "8123"
    assert shown["env"]["UI_HOST"] == "0.0.0.0"
    assert shown["settings"]["api_port"] == 8123
    assert "Replay API docs      http://localhost:8123/docs" in services(tmp_path, clean_env(), "info")


def test_the_environment_wins_over_dotenv(tmp_path):
    (tmp_path / ".env").write_text(f"RUN_DIR={tmp_path / 'run'}\nAPI_PORT=8123\n", encoding="utf-8")
    shown = exec_show(tmp_path, clean_env(API_PORT="9001"))
    assert shown["env"]["API_PORT"] == "9001"
    assert shown["settings"]["api_port"] == 9001


def test_exec_does_not_override_what_the_user_set(tmp_path):
    run_dir = tmp_path / "run"
    write_record(run_dir)
    dotenv = tmp_path / ".env"

    # nothing set by the user: the record of `start` applies
    dotenv.write_text(f"RUN_DIR={run_dir}\n", encoding="utf-8")
    shown = exec_show(tmp_path, clean_env())
    assert shown["env"]["EVENT_STORE_URL"] == "esdb://localhost:2113?Tls=false"
    assert shown["env"]["ESDB_URL"] == "esdb://localhost:2113?Tls=false"
    assert shown["env"]["SERVICES_MODE"] is None

    # .env beats the record
    dotenv.write_text(f"RUN_DIR={run_dir}\nEVENT_STORE_URL=sqlite:///mine.db\n", encoding="utf-8")
    shown = exec_show(tmp_path, clean_env())
    assert shown["env"]["EVENT_STORE_URL"] == "sqlite:///mine.db"
    assert shown["settings"]["event_store_url"] == "sqlite:///mine.db"
    assert "Event store          sqlite:///mine.db" in services(tmp_path, clean_env(), "info")

    # the environment beats .env and the record
    env = clean_env(EVENT_STORE_URL="sqlite:///env.db", ESDB_URL="esdb://elsewhere:2113?Tls=false")
    shown = exec_show(tmp_path, env)
    assert shown["env"]["EVENT_STORE_URL"] == "sqlite:///env.db"
    assert shown["env"]["ESDB_URL"] == "esdb://elsewhere:2113?Tls=false"
    assert shown["settings"]["event_store_url"] == "sqlite:///env.db"

    # no record and nothing set: the program's own default
    (run_dir / "services.env").unlink()
    dotenv.write_text(f"RUN_DIR={run_dir}\n", encoding="utf-8")
    shown = exec_show(tmp_path, clean_env())
    assert shown["env"]["EVENT_STORE_URL"] is None
    assert shown["settings"]["event_store_url"] == Settings.model_fields["event_store_url"].default


def test_a_relative_run_dir_stays_relative_in_the_sqlite_url(tmp_path):
    # relative RUN_DIR is taken from the checkout; a name of its own, where nothing is written (info
    # only reads the record, which is not there)
    relative = f".run-test-{uuid.uuid4().hex[:8]}/data"
    (tmp_path / ".env").write_text(f"RUN_DIR={relative}/\n", encoding="utf-8")
    out = services(tmp_path, clean_env(), "info")
    assert f"Event store          sqlite:///{relative}/events.db\n" in out
    assert not (ROOT / relative.split("/")[0]).exists()


def run_services(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_an_amqp_url_naming_several_nodes_starts_no_single_node(tmp_path):
    # nothing listens on these ports: start says so and starts nothing
    nodes = ",".join(f"amqp://guest:secret@127.0.0.1:{free_port()}/%2F" for _ in range(2))
    env = clean_env(RUN_DIR=str(tmp_path / "run"), AMQP_URL=nodes)
    result = run_services(tmp_path, env, "start")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "AMQP_URL names 2 nodes and none accepts our connection" in result.stdout
    assert "task start_cluster" in result.stdout and "secret" not in result.stdout
    assert not (tmp_path / "run" / "rabbitmq").exists() and not (tmp_path / "run" / "services.env").exists()


def test_a_wrong_amqp_url_is_refused_before_anything_starts(tmp_path):
    env = clean_env(RUN_DIR=str(tmp_path / "run"), AMQP_URL=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F,,")
    result = run_services(tmp_path, env, "start")
    assert result.returncode == 2 and "AMQP_URL" in result.stderr and "is empty" in result.stderr, result.stderr


def test_status_cluster_of_a_cluster_never_started(tmp_path):
    env = clean_env(RUN_DIR=str(tmp_path / "run"), RABBITMQ_CLUSTER_PORT="18091")
    result = run_services(tmp_path, env, "status_cluster")
    assert result.returncode == 3, result.stdout + result.stderr
    for letter, port in zip("abc", (18091, 18092, 18093)):
        assert f"rabbit_{letter}@localhost: AMQP 127.0.0.1:{port} stopped" in result.stdout
    assert not (tmp_path / "run" / "cluster").exists()
    stopped = run_services(tmp_path, env, "stop_cluster")
    assert stopped.returncode == 0 and "nothing to stop" in stopped.stdout
