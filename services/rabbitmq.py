"""A private RabbitMQ node from the Debian package, everything under RUN_DIR/rabbitmq/.

No init system and no Docker needed: the unwrapped server script runs in its own session (setsid),
with its own HOME (Erlang cookie), mnesia, logs, pid file, config and plugins file. The node name is
unique per RUN_DIR and AMQP port, so several checkouts (or a shared dev node) can run side by side on
different ports. The nodes of the local cluster (cluster.py) are LocalNodes too, with a folder, a
name, a HOME (one cookie for the three) and, as root, a user (`rabbitmq`) of their own.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from . import probe
from .config import Config

RABBIT_LIB = Path("/usr/lib/rabbitmq/bin")
SERVER = RABBIT_LIB / "rabbitmq-server"
CTL = RABBIT_LIB / "rabbitmqctl"
START_TIMEOUT = float(os.environ.get("SERVICES_START_TIMEOUT", "90"))


class ServiceError(RuntimeError):
    pass


def say(msg: str) -> None:
    print(f"services: {msg}", flush=True)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_installed() -> None:
    if SERVER.exists() and CTL.exists():
        return
    if is_root() and shutil.which("apt-get"):
        say("installing RabbitMQ (Debian package rabbitmq-server) with apt-get ...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        done = subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "rabbitmq-server"],
            env=env, check=False,
        )
        if SERVER.exists() and CTL.exists():
            return
        raise ServiceError(f"apt-get install rabbitmq-server failed (exit {done.returncode})")
    raise ServiceError(
        "no Docker engine answers and RabbitMQ is not installed.\n"
        "  Install one of them, e.g. on Debian/Ubuntu: sudo apt-get install rabbitmq-server\n"
        "  (or start Docker), then run this again. Or point AMQP_URL at a broker you already have."
    )


class LocalNode:
    def __init__(self, cfg: Config, *, folder: Path | None = None, name: str | None = None, home: Path | None = None,
                 user: str | None = None, extra_config: str = "", management: bool = True):
        self.cfg = cfg
        self.dir = folder or cfg.run_dir / "rabbitmq"
        self.home = home or self.dir / "home"
        self.user = user  # the server and rabbitmqctl run as this user (root only); None: as we run
        self.extra_config = extra_config  # more rabbitmq.conf lines
        self.management = management  # the management plugin (UI and HTTP API on management_port)
        self._name = name
        self.log_dir = self.dir / "log"
        self.pid_file = self.dir / "rabbit.pid"          # written by the server: the Erlang VM
        self.launcher_file = self.dir / "launcher.pid"   # ours: the session leader we started
        self.info_file = self.dir / "node.json"
        self.out_file = self.log_dir / "server.out"

    # --- facts -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        if self._name:
            return self._name
        info = self._info()
        return info.get("node") or self.cfg.node_name

    def _info(self) -> dict:
        try:
            return json.loads(self.info_file.read_text())
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _read_pid(path: Path) -> int | None:
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _alive(pid: int | None) -> bool:
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        try:  # not a zombie, and still a rabbit (pids get reused)
            stat = Path(f"/proc/{pid}/stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                return False
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            return b"rabbit" in cmd or b"beam" in cmd or b"erl" in cmd
        except OSError:
            return True

    def launcher_pid(self) -> int | None:
        pid = self._read_pid(self.launcher_file)
        return pid if self._alive(pid) else None

    def running(self) -> bool:
        return self.launcher_pid() is not None or self._alive(self._read_pid(self.pid_file))

    def env(self) -> dict[str, str]:
        d = self.dir
        return {
            **os.environ,
            "HOME": str(self.home),
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.cfg.amqp_port),
            "RABBITMQ_DIST_PORT": str(self.cfg.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.log_dir),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(self.pid_file),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def _as_user(self) -> dict:
        """Popen's arguments that run a program as self.user (nothing when None)."""
        if not self.user:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CTL), "-n", self.name, *args], env=self.env(), capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL, check=False,
            cwd=self.dir if self.user else None, **self._as_user(),  # (a folder that user may enter)
        )

    def log_tail(self, lines: int = 25) -> str:
        chunks = []
        for path in [self.out_file, *sorted(self.log_dir.glob("*.log"))]:
            try:
                text = path.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
            if text:
                chunks.append(f"--- {path} ---\n" + "\n".join(text))
        return "\n".join(chunks) or "(no log output)"

    # --- start / stop ------------------------------------------------------------------------
    def _write_files(self) -> None:
        for p in (self.home, self.log_dir, self.dir / "mnesia"):
            p.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            "# generated by `python -m services start`; edited copies are overwritten\n"
            f"listeners.tcp.default = {self.cfg.amqp_port}\n"
            + (f"management.tcp.port = {self.cfg.management_port}\n"
               "management.tcp.ip = 127.0.0.1\n" if self.management else "")
            + "log.console = false\n"
            + self.extra_config
        )
        (self.dir / "enabled_plugins").write_text("[rabbitmq_management].\n" if self.management else "[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")  # do not read /etc/rabbitmq/rabbitmq-env.conf
        self.info_file.write_text(json.dumps({
            "node": self._name or self.cfg.node_name, "amqp_port": self.cfg.amqp_port,
            "management_port": self.cfg.management_port, "dist_port": self.cfg.dist_port,
        }))

    def start(self) -> None:
        ensure_installed()
        if self.running():
            say(f"our RabbitMQ node {self.name} is already running (pid {self.launcher_pid()})")
            self.wait_ready()
            return
        self.wait_ready(self.launch())

    def launch(self) -> subprocess.Popen:
        """Start the server (not running yet) and return at once; wait_ready() waits for it."""
        for port, what in ((self.cfg.management_port, "RABBITMQ_MANAGEMENT_PORT"),
                           (self.cfg.dist_port, "RABBITMQ_DIST_PORT")):
            if what == "RABBITMQ_MANAGEMENT_PORT" and not self.management:
                continue
            if probe.tcp_open("127.0.0.1", port):
                raise ServiceError(f"port {port} ({what}) is taken by another program; "
                                   f"choose another one with {what}=...")
        self._write_files()
        if self.user:
            chown_tree(self.dir, self.user)
        say(f"starting a private RabbitMQ node {self.name}: AMQP 127.0.0.1:{self.cfg.amqp_port}, "
            + (f"management 127.0.0.1:{self.cfg.management_port}, " if self.management else "")
            + f"data in {self.dir}" + (f", as user {self.user}" if self.user else ""))
        with open(self.out_file, "ab") as out:
            proc = subprocess.Popen(
                [str(SERVER)], env=self.env(), cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **self._as_user(),
            )
        self.launcher_file.write_text(f"{proc.pid}\n")
        return proc

    def wait_ready(self, proc: subprocess.Popen | None = None) -> None:
        """Bounded wait until the node accepts AMQP connections with AMQP_URL's credentials."""
        deadline = time.monotonic() + START_TIMEOUT
        url = self.cfg.amqp_url
        guest = f"amqp://guest:guest@127.0.0.1:{self.cfg.amqp_port}/%2F"
        provisioned = False
        started = time.monotonic()
        detail = ""
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise ServiceError(f"RabbitMQ exited during start (code {proc.returncode}):\n"
                                   + self.log_tail())
            state, detail = probe.amqp(url, timeout=2)
            if state == probe.UP:
                say(f"RabbitMQ accepts AMQP connections on {self.cfg.amqp_host}:{self.cfg.amqp_port} "
                    f"({detail}, ready after {time.monotonic() - started:.1f}s)")
                return
            if state == probe.REFUSED and not provisioned:
                if probe.amqp(guest, timeout=2)[0] != probe.DOWN:
                    self.provision()
                    provisioned = True
                    continue
            time.sleep(0.5)
        raise ServiceError(
            f"RabbitMQ did not accept AMQP connections within {START_TIMEOUT:.0f}s ({detail}).\n"
            + self.log_tail())

    def provision(self) -> None:
        """Create AMQP_URL's vhost and user (the node only knows guest, on '/')."""
        user, password, vhost = self.cfg.amqp_user, self.cfg.amqp_password, self.cfg.amqp_vhost
        if vhost != "/":
            say(f"creating vhost {vhost!r}")
            self.ctl("add_vhost", vhost)
        if user != "guest":
            users = self.ctl("list_users", "-q", "-s").stdout.split()
            if user in users:
                say(f"resetting the password of user {user!r}")
                r = self.ctl("change_password", user, password)
            else:
                say(f"creating user {user!r}")
                r = self.ctl("add_user", user, password)
            if r.returncode != 0:
                raise ServiceError(f"rabbitmqctl could not create user {user!r}: {r.stderr.strip()}")
            self.ctl("set_user_tags", user, "administrator")
        r = self.ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        if r.returncode != 0:
            raise ServiceError(f"rabbitmqctl set_permissions failed: {r.stderr.strip() or r.stdout.strip()}")

    def stop(self) -> bool:
        """Stop our node. False when it was not running."""
        launcher = self.launcher_pid()
        beam = self._read_pid(self.pid_file)
        if not launcher and not self._alive(beam):
            self._cleanup()
            return False
        say(f"stopping RabbitMQ node {self.name} ...")
        try:
            r = self.ctl("shutdown", timeout=60)
            ok = r.returncode == 0
            if not ok:
                say(f"rabbitmqctl shutdown failed ({(r.stderr or r.stdout).strip()[:200]}); signalling")
        except subprocess.TimeoutExpired:
            ok = False
            say("rabbitmqctl shutdown timed out; signalling")
        pids = [p for p in (launcher, beam) if p]
        if not self._wait_gone(pids, 10 if ok else 0):
            for pid in pids:
                self._signal_group(pid, signal.SIGTERM)
            if not self._wait_gone(pids, 30):
                for pid in pids:
                    self._signal_group(pid, signal.SIGKILL)
                self._wait_gone(pids, 5)
        self._cleanup()
        say("RabbitMQ stopped")
        return True

    def _wait_gone(self, pids: list[int], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            for pid in pids:  # reap our own child if this process started it
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            if not any(self._alive(p) for p in pids):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    @staticmethod
    def _signal_group(pid: int, sig: int) -> None:
        try:
            pgid = os.getpgid(pid)
            if pgid == pid:  # the session we created: the whole group
                os.killpg(pgid, sig)
            else:
                os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _cleanup(self) -> None:
        for p in (self.launcher_file, self.pid_file):
            try:
                p.unlink()
            except FileNotFoundError:
                pass


def chown_tree(root: Path, user: str) -> None:
    """Give `root` and everything in it to `user` (the server writes there as that user)."""
    entry = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, d) for d in dirs), *(os.path.join(folder, f) for f in files)]:
            try:
                os.chown(name, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
            except FileNotFoundError:
                pass
