"""A single-node Apache Kafka broker (KRaft, combined broker+controller) as a background java process.

The broker runs from the jars that ``deploy/fetch-jars.sh`` put in ``<cache_dir>/kafka-libs``
(no Kafka tarball, no ZooKeeper). Everything it owns lives in ``data_dir``::

    server.properties   rendered on every start (ports may change between runs)
    log4j2.properties   broker logging, written to stdout which goes to broker.log
    broker.log          the broker's log (appended across restarts)
    broker.pid          pid of the running broker
    cluster.id          the KRaft cluster id, generated once and kept
    kraft-logs/         the log dir: metadata log and topic partitions (survives restarts)

The process is started in its own session and is not a child of the caller, so it outlives
the Python process that started it; ``stop()`` (from any process) ends it.

(About 530 lines, over the ~500 the project aims at: it is one concern, the life cycle of one process
(render config, format storage, start, wait until ready, status, stop), and splitting it would scatter
the pid / port / storage invariants those steps share.)
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lakehouse.jvm import kafka_classpath

NODE_ID = 1
_LOG_TAIL_LINES = 40
_INTERNAL_TOPIC_PREFIX = "__"
_TOPIC_ALREADY_EXISTS = 36
_HEAP_RE = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")

# JVM flags: a small machine (2 cores) and fast start matter more than peak throughput.
_JVM_FLAGS = (
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Dfile.encoding=UTF-8",
)

_LOG4J2 = """\
# Written by lakehouse.kafka_broker; stdout is redirected to broker.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d{ISO8601}] %-5p %m (%c{1})%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = WARN
# the full "KafkaConfig values:" dumps (~450 lines each, several per start)
logger.kafkaconfig.name = kafka.server.KafkaConfig
logger.kafkaconfig.level = WARN
logger.abstractconfig.name = org.apache.kafka.common.config.AbstractConfig
logger.abstractconfig.level = WARN
"""


class KafkaBrokerError(RuntimeError):
    """The broker could not be started, stopped or reached."""


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def _cmdline(pid: int) -> list[str]:
    """The argv of ``pid`` ([] if unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            out = subprocess.run(
                ["ps", "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            return []
        return out.split()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _port_in_use(host: str, port: int) -> bool:
    """True if nothing can bind ``host:port`` (someone listens there)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def _port_accepts(host: str, port: int) -> bool:
    """True if a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, no padding (``kafka-storage random-uuid``).

    Like Kafka's own ``Uuid.randomUuid``, never one that starts with "-": the storage tool's
    argument parser would take it for an option (about one id in 64 did).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaBroker:
    """Start, stop and inspect one local KRaft broker whose state lives in ``data_dir``."""

    def __init__(
        self,
        cache_dir: Path,
        data_dir: Path,
        host: str = "127.0.0.1",
        port: int = 19092,
        controller_port: int = 19093,
        heap: str = "512m",
    ) -> None:
        if port == controller_port:
            raise ValueError(f"port and controller_port must differ (both {port})")
        if not _HEAP_RE.match(heap):
            raise ValueError(f"heap must look like 512m or 1g, got {heap!r}")
        self.cache_dir = Path(cache_dir)
        self.data_dir = Path(data_dir).absolute()
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.heap = heap

    # ----------------------------------------------------------------- paths
    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients."""
        return f"{self.host}:{self.port}"

    @property
    def server_properties(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_dir(self) -> Path:
        """Kafka's ``log.dirs`` (topic data and the KRaft metadata log)."""
        return self.data_dir / "kraft-logs"

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"

    @property
    def log4j_config(self) -> Path:
        return self.data_dir / "log4j2.properties"

    def __repr__(self) -> str:
        return f"KafkaBroker(bootstrap={self.bootstrap!r}, data_dir={str(self.data_dir)!r})"

    # ------------------------------------------------------------- lifecycle
    def start(self, timeout: float = 60) -> None:
        """Start the broker (formatting storage on first use) and wait until it serves metadata.

        Idempotent: if this data_dir's broker already runs, only waits for it to be ready.
        """
        deadline = time.monotonic() + timeout
        pid = self._find_pid()
        if pid is not None:
            if self.server_properties.read_text() != self._render_properties():
                raise KafkaBrokerError(
                    f"the Kafka broker of {self.data_dir} already runs (pid {pid}) with other settings "
                    f"(see {self.server_properties}); stop it first"
                )
            self._wait_ready(pid, deadline, log_offset=None)
            return

        java = self._java()
        classpath = kafka_classpath(self.cache_dir)  # FileNotFoundError: run make setup
        for name, port in (("port", self.port), ("controller_port", self.controller_port)):
            if _port_in_use(self.host, port):
                raise KafkaBrokerError(
                    f"cannot start Kafka broker: {self.host}:{port} ({name}) is already in use by a "
                    f"process that is not the Aegis broker of {self.data_dir}; stop it or choose "
                    "other ports (kafka.broker.port / kafka.broker.controller_port)"
                )

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log4j_config.write_text(_LOG4J2)
        self.server_properties.write_text(self._render_properties())
        if not (self.log_dir / "meta.properties").exists():
            self._format_storage(java, classpath)

        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        with self.log_file.open("a") as log:
            log.write(f"\n===== aegis: starting broker {self.bootstrap} at {time.strftime('%F %T')} =====\n")
        pid = self._launch(java, classpath)
        self.pid_file.write_text(f"{pid}\n")
        try:
            self._wait_ready(pid, deadline, log_offset)
        except BaseException:
            self._terminate(pid, timeout=10)
            self.pid_file.unlink(missing_ok=True)
            raise

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker: SIGTERM (clean shutdown), then SIGKILL after ``timeout``. Idempotent."""
        pid = self._find_pid()
        if pid is not None:
            self._terminate(pid, timeout)
        self.pid_file.unlink(missing_ok=True)

    def status(self) -> dict[str, Any]:
        """``running``, ``pid``, ``bootstrap``, paths, and ``topics`` (None unless running)."""
        pid = self._find_pid()
        info: dict[str, Any] = {
            "running": pid is not None,
            "pid": pid,
            "bootstrap": self.bootstrap,
            "data_dir": str(self.data_dir),
            "log": str(self.log_file),
            "topics": None,
        }
        if pid is not None:
            try:
                with self._admin(timeout=10) as admin:
                    info["topics"] = sorted(
                        t for t in admin.list_topics() if not t.startswith(_INTERNAL_TOPIC_PREFIX)
                    )
            except Exception as exc:  # running but not answering (yet)
                info["error"] = f"{type(exc).__name__}: {exc}"
        return info

    def ensure_topics(self, topics: dict[str, int], timeout: float = 30) -> list[str]:
        """Create the missing ``{name: partitions}`` topics (replication factor 1); return their names.

        Existing topics are left as they are (their partition count is not changed).
        """
        for name, partitions in topics.items():
            if not name or partitions < 1:
                raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
        if self._find_pid() is None:
            raise KafkaBrokerError(f"Kafka broker {self.bootstrap} is not running; start it first")
        with self._admin(timeout=timeout) as admin:
            existing = set(admin.list_topics())
            missing = {n: p for n, p in topics.items() if n not in existing}
            if not missing:
                return []
            result = admin.create_topics(
                {n: {"num_partitions": p, "replication_factor": 1} for n, p in missing.items()},
                timeout_ms=int(timeout * 1000),
                raise_errors=False,
            )
            created, errors = [], []
            for topic in result["topics"]:
                code = topic.get("error_code", 0)
                if code == 0:
                    created.append(topic["name"])
                elif code != _TOPIC_ALREADY_EXISTS:  # lost a race with another creator: fine
                    errors.append(f"{topic['name']}: error {code} {topic.get('error_message') or ''}".strip())
            if errors:
                raise KafkaBrokerError(f"could not create topics on {self.bootstrap}: {'; '.join(errors)}")
            admin.wait_for_topics(created, timeout_ms=int(timeout * 1000))
        return sorted(created)

    # --------------------------------------------------------------- helpers
    def _java(self) -> str:
        """The java executable: $JAVA_HOME/bin/java, else java on PATH."""
        java_home = os.environ.get("JAVA_HOME")
        if java_home and os.access(Path(java_home) / "bin" / "java", os.X_OK):
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if java is None:
            raise KafkaBrokerError(
                "java not found (no $JAVA_HOME/bin/java, none on PATH); the Kafka broker needs a JDK 17+"
            )
        return java

    def _render_properties(self) -> str:
        """server.properties for a single-node combined KRaft broker+controller on loopback."""
        props = {
            "process.roles": "broker,controller",
            "node.id": NODE_ID,
            "controller.quorum.voters": f"{NODE_ID}@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": self.log_dir,
            # one node: replication factor 1 everywhere
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "offsets.topic.num.partitions": 8,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "transaction.state.log.num.partitions": 4,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "share.coordinator.state.topic.num.partitions": 4,
            # topics are created explicitly (ensure_topics)
            "auto.create.topics.enable": "false",
            "num.partitions": 1,
            "delete.topic.enable": "true",
            "group.initial.rebalance.delay.ms": 0,
            "auto.leader.rebalance.enable": "false",
            # small machine (2 cores)
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.replica.fetchers": 1,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
            # generous retention: 30 days, no size cap
            "log.retention.hours": 720,
            "log.retention.bytes": -1,
            "log.segment.bytes": 128 * 1024 * 1024,
        }
        lines = ["# Written by lakehouse.kafka_broker on every start; edits are overwritten."]
        lines += [f"{key}={value}" for key, value in props.items()]
        return "\n".join(lines) + "\n"

    def _jvm_command(self, java: str, classpath: str, heap: str) -> list[str]:
        return [
            java,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *_JVM_FLAGS,
            f"-Dlog4j2.configurationFile={self.log4j_config}",
            f"-Dkafka.logs.dir={self.data_dir}",
            "-cp",
            classpath,
        ]

    def _cluster_id(self) -> str:
        """The persisted cluster id (generated on first use)."""
        if self.cluster_id_file.exists():
            cluster_id = self.cluster_id_file.read_text().strip()
            if cluster_id:
                return cluster_id
        cluster_id = _new_cluster_id()
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _format_storage(self, java: str, classpath: str) -> None:
        """Format the KRaft log dir once (``kafka.tools.StorageTool format``, like kafka-storage.sh)."""
        cmd = [
            *self._jvm_command(java, classpath, "256m"),
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={self._cluster_id()}",  # one token: an id kept from before may start with "-"
            "--config",
            str(self.server_properties),
            "--ignore-formatted",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        with self.log_file.open("a") as log:
            log.write(f"===== aegis: formatted {self.log_dir} =====\n{proc.stdout}{proc.stderr}")
        if proc.returncode != 0:
            raise KafkaBrokerError(
                f"formatting Kafka storage in {self.log_dir} failed (exit {proc.returncode}):\n"
                f"{(proc.stdout + proc.stderr).strip()[-4000:]}"
            )

    def _launch(self, java: str, classpath: str) -> int:
        """Start ``kafka.Kafka`` detached (own session, reparented to init); return its pid."""
        cmd = [*self._jvm_command(java, classpath, self.heap), "kafka.Kafka", str(self.server_properties)]
        # sh backgrounds java and exits at once: the broker is no child of ours (no zombie,
        # no ResourceWarning) and, in its own session, outlives us and our terminal.
        script = 'log=$1; shift; "$@" </dev/null >>"$log" 2>&1 & echo $!'
        proc = subprocess.run(
            ["/bin/sh", "-c", script, "aegis-kafka", str(self.log_file), *cmd],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.data_dir,
            start_new_session=True,
            timeout=30,
        )
        out = proc.stdout.strip()
        if proc.returncode != 0 or not out.isdigit():
            raise KafkaBrokerError(f"could not launch the Kafka broker: {proc.stderr.strip() or out}")
        return int(out)

    def _is_our_broker(self, pid: int) -> bool:
        argv = _cmdline(pid)
        return "kafka.Kafka" in argv and str(self.server_properties) in argv

    def _find_pid(self) -> int | None:
        """The pid of this data_dir's running broker (pid file first, else a /proc scan)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _pid_alive(pid) and self._is_our_broker(pid):
            return pid
        proc = Path("/proc")
        if proc.is_dir():
            for entry in proc.iterdir():
                if entry.name.isdigit():
                    candidate = int(entry.name)
                    if self._is_our_broker(candidate) and _pid_alive(candidate):
                        self.pid_file.write_text(f"{candidate}\n")
                        return candidate
        if pid is not None:
            self.pid_file.unlink(missing_ok=True)  # stale
        return None

    def _terminate(self, pid: int, timeout: float) -> None:
        """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                if not _pid_alive(pid):
                    return
                time.sleep(0.1)
        if _pid_alive(pid):
            raise KafkaBrokerError(f"Kafka broker pid {pid} did not exit after SIGKILL")

    def _log_tail(self, offset: int | None, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of broker.log written since ``offset``."""
        try:
            with self.log_file.open("rb") as log:
                if offset:
                    log.seek(offset)
                text = log.read().decode(errors="replace")
        except OSError:
            return "(no broker.log)"
        return "\n".join(text.splitlines()[-lines:])

    def _admin(self, timeout: float) -> Any:
        """A KafkaAdminClient for this broker (use as a context manager)."""
        from kafka.admin import KafkaAdminClient  # heavy import, only when needed

        ms = max(1000, int(timeout * 1000))
        return KafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id="aegis-broker-admin",
            request_timeout_ms=ms,
            bootstrap_timeout_ms=ms,
            reconnect_backoff_max_ms=1000,
        )

    def _ready(self, admin: Any) -> bool:
        """True once the broker answers metadata and is registered and unfenced."""
        cluster = admin.describe_cluster()
        return any(
            b.get("broker_id") == NODE_ID and not b.get("is_fenced", False)
            for b in cluster.get("brokers", [])
        )

    def _wait_ready(self, pid: int, deadline: float, log_offset: int | None) -> None:
        """Block until the broker serves metadata; raise (with the log tail) if it dies or times out."""

        def fail(reason: str) -> KafkaBrokerError:
            return KafkaBrokerError(
                f"Kafka broker {self.bootstrap} {reason}; last lines of {self.log_file}:\n"
                f"{self._log_tail(log_offset)}"
            )

        while not _port_accepts(self.host, self.port):
            if not _pid_alive(pid):
                raise fail(f"exited during startup (pid {pid})")
            if time.monotonic() > deadline:
                raise fail("did not open its port in time")
            time.sleep(0.1)
        last_error = ""
        while True:
            if not _pid_alive(pid):
                raise fail(f"exited during startup (pid {pid})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise fail(f"did not become ready in time ({last_error or 'not registered'})")
            try:
                with self._admin(timeout=min(remaining, 5)) as admin:
                    while time.monotonic() < deadline:
                        if self._ready(admin):
                            return
                        time.sleep(0.1)
            except Exception as exc:  # not answering yet
                last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2)
