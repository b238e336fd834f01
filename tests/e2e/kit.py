"""The e2e suite's test kit: a Kafka broker, the real StateFun runtimes and our function servers,
each a real process on 127.0.0.1 with its log in a file, stopped by its PID.

The runtimes and the broker are released artifacts from Maven Central, resolved by
``runtimes/pom.xml`` (one profile each) into a classpath; nothing of theirs is built. See
docs/deployment.md for the same recipe as commands.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any, Optional, Union

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RUNTIMES = HERE / "runtimes"
TARGET = RUNTIMES / "target"
LOG4J = f"-Dlog4j.configurationFile={RUNTIMES / 'log4j2.properties'}"

#: Every process the kit started in this test session, for the logs shown when a test fails.
STARTED: list[Process] = []
#: (what, seconds) of each timed step, printed at the end of the session.
TIMINGS: list[tuple[str, float]] = []


class Unavailable(RuntimeError):
    """A runtime or the broker cannot be had on this machine (the message says exactly why)."""


def timed(what: str) -> Any:
    """Print how long ``what`` took (the e2e session's timings)."""

    class Timer:
        def __enter__(self) -> None:
            self.start = time.monotonic()

        def __exit__(self, *exc: object) -> None:
            TIMINGS.append((what, time.monotonic() - self.start))

    return Timer()


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` ports free now, each a different one: the sockets are held until all are
    picked (one closed before the next is bound may be handed out again)."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def wait_for_port(port: int, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            problem = f"exited with {process.popen.returncode}"
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    else:
        problem = f"did not listen on port {port} within {timeout} s"
    raise RuntimeError(f"{process.name} {problem}; the end of its log:\n{process.tail()}")


class Process:
    """A process started with its output in ``log``; stopped by its PID (its process group)."""

    def __init__(self, name: str, command: Sequence[str], log: Path, **options: Any) -> None:
        self.name = name
        self.log = log
        self.command = list(command)
        with open(log, "ab") as output:
            self.popen = subprocess.Popen(
                self.command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
                **options,
            )  # fmt: skip
        STARTED.append(self)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the process group (gunicorn's workers too), SIGKILL if it lingers."""
        if self.alive():
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.popen.wait()

    def kill9(self) -> None:
        if self.alive():
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()

    def tail(self, lines: int = 150) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def run_checked(command: Sequence[str], what: str, **options: Any) -> str:
    done = subprocess.run(command, capture_output=True, text=True, **options)
    if done.returncode != 0:
        raise Unavailable(
            f"{what} failed ({done.returncode}):\n$ {' '.join(command)}\n{done.stdout}{done.stderr}"
        )
    return done.stdout


_classpaths: dict[str, str | Unavailable] = {}


def classpath(profile: str) -> str:
    """The classpath of one profile of runtimes/pom.xml, resolved from Maven Central once (a
    failure too is remembered for the session)."""
    if profile not in _classpaths:
        try:
            _classpaths[profile] = _resolve(profile)
        except Unavailable as error:
            _classpaths[profile] = error
    found = _classpaths[profile]
    if isinstance(found, Unavailable):
        raise found
    return found


def _resolve(profile: str) -> str:
    path = TARGET / f"{profile}.classpath"
    if not path.exists() or path.stat().st_mtime < (RUNTIMES / "pom.xml").stat().st_mtime:
        command = ["mvn", "-B", "-q", "-f", str(RUNTIMES / "pom.xml"), "-P", profile,
                   "dependency:build-classpath"]  # fmt: skip
        with timed(f"maven: resolve {profile}"):
            run_checked(command, f"resolving {profile} from Maven Central")
    return path.read_text().strip()


# --- Kafka ----------------------------------------------------------------------------------


@dataclass
class Record:
    topic: str
    partition: int
    key: Optional[str]
    value: bytes
    headers: list[tuple[str, Optional[bytes]]]
    #: when this reader got it (time.time())
    received: float = 0.0

    @property
    def text(self) -> str:
        return self.value.decode()


def java_partition(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner gives a keyed record: the key's
    murmur2 hash (seed 0x9747b28c), its sign bit cleared, modulo the partition count."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(key)) & mask
    whole = len(key) - len(key) % 4
    for start in range(0, whole, 4):
        k = int.from_bytes(key[start : start + 4], "little") * m & mask
        k = (k ^ k >> 24) * m & mask
        h = (h * m & mask) ^ k
    tail = key[whole:]
    if tail:
        for index in reversed(range(len(tail))):
            h ^= tail[index] << (8 * index)
        h = h * m & mask
    h = (h ^ h >> 13) * m & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


#: The one user the broker's SASL listener (``Kafka.sasl_bootstrap``, PLAIN) knows.
SASL_USER, SASL_PASSWORD = "alice", "alice-s3cret"


class Kafka:
    """One Apache Kafka broker in KRaft mode (broker and controller in one JVM), with a
    PLAINTEXT listener (``bootstrap``) and a SASL_PLAINTEXT one (``sasl_bootstrap``)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = 0
        self.bootstrap = ""
        self.sasl_bootstrap = ""
        self.process: Optional[Process] = None

    def start(self) -> None:
        """Format a new log directory and start the broker."""
        classpath("kafka")  # resolved before the ports are picked, so they are still free
        # three different ports: Kafka refuses two listeners on one ("requirement failed")
        self.port, controller, sasl = free_ports(3)
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.sasl_bootstrap = f"127.0.0.1:{sasl}"
        self.config = self.workdir / "server.properties"
        login = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        self.config.write_text(
            "process.roles=broker,controller\nnode.id=1\n"
            f"controller.quorum.voters=1@127.0.0.1:{controller}\n"
            f"listeners=PLAINTEXT://{self.bootstrap},CONTROLLER://127.0.0.1:{controller},"
            f"SASL_PLAINTEXT://{self.sasl_bootstrap}\n"
            f"advertised.listeners=PLAINTEXT://{self.bootstrap},"
            f"SASL_PLAINTEXT://{self.sasl_bootstrap}\n"
            "controller.listener.names=CONTROLLER\ninter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
            "SASL_PLAINTEXT:SASL_PLAINTEXT\n"
            "sasl.enabled.mechanisms=PLAIN\n"
            f'listener.name.sasl_plaintext.plain.sasl.jaas.config={login} user_{SASL_USER}="'
            f'{SASL_PASSWORD}";\n'
            f"log.dirs={self.workdir / 'data'}\n"
            # one partition of group offsets: once a group's coordinator answers, every one does
            "offsets.topic.num.partitions=1\n"
            "offsets.topic.replication.factor=1\ntransaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\ngroup.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=false\n"
        )
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        with timed("kafka: format and start"):
            # "=": an id that starts with "-" (1 in 64) is not taken for an option
            run_checked([*self._java(), "kafka.tools.StorageTool", "format",
                         f"--cluster-id={cluster}", "-c", str(self.config)],
                        "formatting Kafka's log directory")  # fmt: skip
            self.restart()

    def _java(self) -> list[str]:
        return ["java", LOG4J, "-Xmx512m", "-cp", classpath("kafka")]

    def restart(self) -> None:
        """Start the broker (again) on its log directory, and wait until it answers."""
        self.process = Process("kafka", [*self._java(), "kafka.Kafka", str(self.config)],
                               self.workdir / "kafka.log")  # fmt: skip
        wait_for_port(self.port, self.process, 60)
        self.admin().list_topics(timeout=30)

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def admin(self) -> Any:
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap})

    def create_topics(self, names: Iterable[str], partitions: int = 2) -> None:
        from confluent_kafka.admin import NewTopic

        admin = self.admin()  # kept until every future is done: its futures die with it
        unique = dict.fromkeys(names)  # librdkafka crashes on a name given twice in one call
        futures = admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in unique]
        )
        for future in futures.values():
            future.result(timeout=30)

    def produce(
        self,
        topic: str,
        records: Iterable[tuple[Union[str, bytes, None], Optional[bytes]]],
        **options: Any,
    ) -> None:
        """Produce ``(key, value)`` records, a text key as UTF-8 (``options``: ``partition=``,
        ``timestamp=``)."""
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True})
        for key, value in records:
            raw_key = key.encode() if isinstance(key, str) else key
            producer.produce(topic, key=raw_key, value=value, **options)
        if producer.flush(30):
            raise RuntimeError(f"records to {topic} not delivered within 30 s")

    def read(self, topic: str, count: int, timeout: float = 90, settle: float = 0) -> list[Record]:
        """The first ``count`` committed records of ``topic`` (``read_committed``), waiting up to
        ``timeout`` s; then ``settle`` s more, to see any record beyond ``count``."""
        from confluent_kafka import Consumer

        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"e2e-reader-{uuid.uuid4()}",
            "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            "enable.auto.commit": False,
        })  # fmt: skip
        consumer.subscribe([topic])
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        extra_until: Optional[float] = None
        try:
            while True:
                now = time.monotonic()
                if extra_until is None and len(records) >= count:
                    extra_until = now + settle
                if (extra_until is not None and now >= extra_until) or now >= deadline:
                    break
                message = consumer.poll(0.5)
                if message is None or message.error():
                    continue
                key = message.key()
                records.append(Record(
                    message.topic(), message.partition(), None if key is None else key.decode(),
                    message.value() or b"", list(message.headers() or []), time.time(),
                ))  # fmt: skip
        finally:
            consumer.close()
        return records


# --- Kinesis ---------------------------------------------------------------------------------

KINESALITE = "kinesalite@3.3.3"


class Kinesis:
    """A Kinesis API on 127.0.0.1: kinesalite (from the npm registry, run by Node), in memory."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: Optional[Process] = None

    def start(self) -> None:
        npm = TARGET / "npm"
        program = npm / "node_modules" / "kinesalite" / "cli.js"
        if not program.exists():
            install = ["npm", "install", "--prefix", str(npm), "--no-audit", "--no-fund"]
            with timed(f"npm: install {KINESALITE}"):
                run_checked([*install, KINESALITE], f"installing {KINESALITE} from npm")
        command = ["node", str(program), "--port", str(self.port), "--createStreamMs", "0"]
        self.process = Process("kinesalite", command, self.workdir / "kinesalite.log")
        wait_for_port(self.port, self.process, 60)

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def client(self) -> Any:
        import boto3

        return boto3.client("kinesis", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip

    def create_streams(self, names: Iterable[str], shards: int = 2) -> None:
        client = self.client()
        for name in names:
            client.create_stream(StreamName=name, ShardCount=shards)
            client.get_waiter("stream_exists").wait(StreamName=name,
                                                    WaiterConfig={"Delay": 0.2})  # fmt: skip

    def put(self, stream: str, records: Iterable[tuple[str, bytes]]) -> None:
        entries = [{"PartitionKey": key, "Data": value} for key, value in records]
        reply = self.client().put_records(StreamName=stream, Records=entries)
        assert not reply["FailedRecordCount"], reply

    def read(self, stream: str, count: int, timeout: float = 60, settle: float = 0) -> list[Record]:
        """Every record of ``stream`` from the start, once ``count`` are there (and ``settle``
        s more have passed), or after ``timeout`` s: partition key as the key, shard order."""
        client = self.client()
        deadline = time.monotonic() + timeout
        extra_until: Optional[float] = None
        while True:
            records: list[Record] = []
            for index, shard in enumerate(client.list_shards(StreamName=stream)["Shards"]):
                iterator = client.get_shard_iterator(
                    StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
                while iterator:
                    reply = client.get_records(ShardIterator=iterator, Limit=10000)
                    records += [Record(stream, index, r["PartitionKey"], bytes(r["Data"]), [])
                                for r in reply["Records"]]  # fmt: skip
                    iterator = reply.get("NextShardIterator") if reply["Records"] else None
            now = time.monotonic()
            if extra_until is None and len(records) >= count:
                extra_until = now + settle
            if (extra_until is not None and now >= extra_until) or now >= deadline:
                return records
            time.sleep(0.3)


# --- the StateFun runtimes ------------------------------------------------------------------

# What Flink 1.16 needs opened on Java 17 (Flink's own list for Java 17, from 1.17 on).
JAVA17_OPENS = [
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in ("java.lang", "java.net", "java.io", "java.nio", "sun.nio.ch",
                    "java.lang.reflect", "java.text", "java.time", "java.util",
                    "java.util.concurrent", "java.util.concurrent.atomic",
                    "java.util.concurrent.locks")
] + ["--add-exports=java.base/sun.net.util=ALL-UNNAMED",
     "--add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED",
     "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED"]  # fmt: skip


def jdk(at_least: int) -> Path:
    """The oldest JDK of version ``at_least`` or newer, of $JAVA_HOME and those under
    /usr/lib/jvm: each runtime on the Java it was released for."""
    homes = [Path(os.environ["JAVA_HOME"])] if "JAVA_HOME" in os.environ else []
    homes += Path("/usr/lib/jvm").glob("*")
    found = {}
    for home in homes:
        release = home / "release"
        if release.exists() and (home / "bin" / "javac").exists():
            for line in release.read_text().splitlines():
                if line.startswith("JAVA_VERSION="):
                    major = int(line.split("=")[1].strip('"').split(".")[0])
                    if major >= at_least:
                        found.setdefault(major, home)
    if not found:
        raise Unavailable(f"no JDK {at_least} or newer in $JAVA_HOME or under /usr/lib/jvm")
    return found[min(found)]


@dataclass
class Runtime:
    """One StateFun runtime: its Maven profile, its JDK and the Flink keys it reads."""

    name: str
    java_major: int
    jvm_options: list[str]
    #: Flink configuration keys by meaning (they were renamed in Flink 2).
    keys: dict[str, str]

    def prepare(self) -> tuple[Path, str]:
        """Resolve the runtime and compile the launcher against it: (java home, classpath)."""
        home = jdk(self.java_major)
        cp = classpath(self.name)
        classes = TARGET / f"{self.name}-launcher-{home.name}"
        source = RUNTIMES / "StatefunLauncher.java"
        launcher = classes / "StatefunLauncher.class"
        if not launcher.exists() or launcher.stat().st_mtime < source.stat().st_mtime:
            run_checked([str(home / "bin" / "javac"), "-d", str(classes), "-cp", cp,
                         str(source)], "compiling the launcher")  # fmt: skip
        return home, f"{classes}{os.pathsep}{cp}"

    def configuration(self, module: Path, checkpoints: Path) -> dict[str, str]:
        keys = self.keys
        settings = {
            "statefun.remote.module-name": module.as_uri(),
            keys["backend"]: "rocksdb",
            keys["checkpoints"]: checkpoints.as_uri(),
            keys["retained"]: "3",
            "execution.checkpointing.interval": "1s",
            "execution.checkpointing.min-pause": "200ms",
            "execution.checkpointing.max-concurrent-checkpoints": "1",
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "classloader.parent-first-patterns.additional":
                "org.apache.flink.statefun;org.apache.kafka;com.google.protobuf",
            keys["restart"]: "fixed-delay",
            "restart-strategy.fixed-delay.attempts": "1000",
            "restart-strategy.fixed-delay.delay": "1s",
            "parallelism.default": "2",
            "rest.port": str(free_port()),
        }  # fmt: skip
        restore = latest_checkpoint(checkpoints)
        if restore is not None:
            settings[keys["restore"]] = restore.as_uri()
        return settings

    def start(self, module: Path, workdir: Path) -> Process:
        """Run the application of ``module`` (restoring the newest retained checkpoint under
        ``workdir``, if any) in a Flink mini-cluster in one JVM."""
        home, cp = self.prepare()
        settings = self.configuration(module, workdir / "checkpoints")
        arguments = [f"{key}={value}" for key, value in settings.items()]
        java = str(home / "bin" / "java")
        command = [java, *self.jvm_options, LOG4J, "-Xmx1g", "-cp", cp, "StatefunLauncher"]
        command += arguments
        return Process(self.name, command, workdir / f"{self.name}.log")


def latest_checkpoint(checkpoints: Path) -> Optional[Path]:
    """The newest complete checkpoint (one with ``_metadata``) under ``checkpoints``."""
    done = list(checkpoints.glob("*/chk-*/_metadata"))
    return (
        max(done, key=lambda meta: meta.stat().st_mtime_ns, default=None).parent if done else None
    )


APACHE = Runtime(
    "apache-statefun", 17, JAVA17_OPENS,
    {"backend": "state.backend", "checkpoints": "state.checkpoints.dir",
     "retained": "state.checkpoints.num-retained", "restore": "execution.savepoint.path",
     "restart": "restart-strategy"},
)  # fmt: skip
ACTORS = Runtime(
    "statefun-actors", 21, JAVA17_OPENS,
    {"backend": "state.backend.type", "checkpoints": "execution.checkpointing.dir",
     "retained": "execution.checkpointing.num-retained",
     "restore": "execution.state-recovery.path", "restart": "restart-strategy.type"},
)  # fmt: skip
ALL_RUNTIMES = {runtime.name: runtime for runtime in (APACHE, ACTORS)}


# --- our function servers -------------------------------------------------------------------

#: Each integration as tests/hardening/serve.py runs it (Flask and Django under gunicorn,
#: Django also under uvicorn), and the core's ASGI application mounted in FastAPI.
FRAMEWORKS = ("aiohttp", "tornado", "flask", "django", "django-asgi", "fastapi")


def function_path(framework: str) -> str:
    """Where ``framework`` serves the functions: a Starlette mount (FastAPI) answers its path
    with a trailing slash, and the runtime does not follow a redirect of a POST."""
    return "/statefun/" if framework == "fastapi" else "/statefun"


def start_function_server(
    framework: str, workdir: Path, prefix: str, port: int = 0, **settings: str
) -> tuple[Process, int]:
    port = port or free_port()
    env = {**os.environ, "SERVE_FUNCTIONS": "tests.e2e.functions:functions",
           "HARDENING_LIMITS": "default", "E2E_TOPIC_PREFIX": prefix, **settings}  # fmt: skip
    command = [sys.executable, "-m", "tests.hardening.serve", framework, str(port)]
    process = Process(f"functions ({framework})", command, workdir / f"{framework}.log",
                      cwd=ROOT, env=env)  # fmt: skip
    wait_for_port(port, process, 60)
    return process, port


_java_classes: list[Path] = []


def start_java_function(workdir: Path, prefix: str) -> tuple[Process, int]:
    """java/MixedFunction.java, compiled with ``javac`` against the official Java SDK (the
    ``java-sdk`` profile of runtimes/pom.xml; once a session) and served by the JDK's HTTP
    server, writing its egress records to topics named with ``prefix``."""
    if shutil.which("javac") is None:
        raise Unavailable("no javac on the PATH (a JDK, not only a JRE, is needed)")
    cp = classpath("java-sdk")
    if not _java_classes:
        classes, source = workdir / "java-classes", HERE / "java" / "MixedFunction.java"
        with timed("javac: compile java/MixedFunction.java"):
            run_checked(["javac", "-d", str(classes), "-cp", cp, str(source)],
                        f"compiling {source}")  # fmt: skip
        _java_classes.append(classes)
    port = free_port()
    command = ["java", "-Xmx128m", "-cp", f"{_java_classes[0]}{os.pathsep}{cp}",
               "MixedFunction", str(port)]  # fmt: skip
    process = Process("functions (Java SDK)", command, workdir / "java-functions.log",
                      env={**os.environ, "E2E_TOPIC_PREFIX": prefix})  # fmt: skip
    wait_for_port(port, process, 60)
    return process, port


_js_installs: list[Path] = []


def start_js_function(workdir: Path, prefix: str) -> tuple[Process, int]:
    """js/mixed_function.js, its dependencies installed by ``npm ci`` from js/package-lock.json
    into a directory of its own (once a session), served by node's own HTTP server, writing
    its egress records to topics named with ``prefix``."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise Unavailable("no node or npm on the PATH")
    if not _js_installs:
        installed = workdir / "js"
        installed.mkdir()
        for name in ("package.json", "package-lock.json", "mixed_function.js"):
            shutil.copy(HERE / "js" / name, installed / name)
        with timed("npm: ci js/package-lock.json"):
            run_checked(["npm", "ci", "--no-audit", "--no-fund"], "installing the JavaScript "
                        "SDK from js/package-lock.json", cwd=installed)  # fmt: skip
        _js_installs.append(installed)
    port = free_port()
    command = ["node", str(_js_installs[0] / "mixed_function.js"), str(port)]
    process = Process("functions (JavaScript SDK)", command, workdir / "js-functions.log",
                      env={**os.environ, "E2E_TOPIC_PREFIX": prefix})  # fmt: skip
    wait_for_port(port, process, 60)
    return process, port


def make_pki(directory: Path) -> Path:
    """A CA (``ca.pem``), a server certificate it signed for 127.0.0.1 (``server.pem``, with
    its key) and a client certificate (``client.crt``) whose PKCS#8 key (``client.key.p8``)
    is encrypted with the password in ``password.txt``, as the StateFun docs show them. The
    key is encrypted with PBES1 (openssl's ``-v1 PBE-SHA1-3DES``): StateFun 3.3's Netty
    cannot read PBES2, what openssl and Python's cryptography write by default."""
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    client = ca.issue_cert("statefun.example", common_name="statefun.example")
    client.cert_chain_pems[0].write_to_path(str(directory / "client.crt"))
    client.private_key_pem.write_to_path(str(directory / "client.key"))
    (directory / "password.txt").write_text("e2e-password")  # no newline: it is all read
    encrypt = ["openssl", "pkcs8", "-topk8", "-v1", "PBE-SHA1-3DES",
               "-in", str(directory / "client.key"), "-out", str(directory / "client.key.p8"),
               "-passout", f"file:{directory / 'password.txt'}"]  # fmt: skip
    run_checked(encrypt, "encrypt the client key")
    return directory


def render_module(
    workdir: Path,
    functions_url: str,
    kafka: str,
    prefix: str,
    template: Path = HERE / "module.yaml",
    sasl_kafka: str = "",
    tls: Optional[Path] = None,
) -> Path:
    """module.yaml for this run; with ``tls`` (a directory of :func:`make_pki`), the transport
    given its TLS files as the StateFun docs show them: a path, and a file with the key's
    password."""
    login = "org.apache.kafka.common.security.plain.PlainLoginModule required"
    jaas = f'\'{login} username="{SASL_USER}" password="{SASL_PASSWORD}";\''
    # e2e/dated's date: an hour ago, after the records before_the_runtime dates two hours ago
    # (the runtime refuses a date still to come)
    dated = time.strftime("%Y-%m-%d %H:%M:%S.000 +0000", time.gmtime(time.time() - 3600))
    text = Template(template.read_text()).substitute(
        dated=dated,
        functions_url=functions_url,
        kafka=kafka,
        prefix=prefix,
        sasl_kafka=sasl_kafka,
        sasl_jaas=jaas,
        tls=""
        if tls is None
        else (
            f"trust_cacerts: {tls}/ca.pem\n    client_cert: {tls}/client.crt\n"
            f"    client_key: {tls}/client.key.p8\n    client_key_password: {tls}/password.txt"
        ),
    )
    module = workdir / "module.yaml"
    module.write_text(text)
    return module


#: The ingress topics of module.yaml, and the egress topics the functions write.
INGRESS_TOPICS = ("names", "ttl", "counter", "fanout", "delay", "flaky", "types", "egress",
                  "evolving", "poison", "unpositioned", "keys", "timer", "logins",
                  "placing", "batches", "slow", "dated", "specific", "programs",
                  "programs-b", "programs-both")  # fmt: skip
EGRESS_TOPICS = (
    "timers",
    "keys-seen",
    "evolved",
    "greetings",
    "expiry",
    "counts",
    "fanned",
    "delays",
    "attempts",
    "typed",
    "records",
    "survivors",
    "dead-letters",
    "unpositioned-taken",
    "placed",
    "batched",
    "slowed",
    "positioned-taken",
    "beyond-ascii",
    "interpreted",
    "interpreted-dead",
)


@dataclass
class Application:
    """The e2e application running: functions served by ``framework``, on ``runtime``."""

    kafka: Kafka
    runtime: Any  # Runtime, or LocalRuntime for LocalApplication
    framework: str
    workdir: Path
    prefix: str
    functions: Optional[Process] = None
    functions_port: int = 0
    job: Optional[Process] = None
    module: Optional[Path] = None
    #: a directory of make_pki's files: the functions served over mutual TLS
    tls: Optional[Path] = None
    #: the module.yaml to fill in
    template: Path = HERE / "module.yaml"

    def topic(self, name: str) -> str:
        return self.prefix + name

    def start(self) -> None:
        self.kafka.create_topics([self.topic(name) for name in (*INGRESS_TOPICS, *EGRESS_TOPICS)])
        self.before_the_runtime()
        self.start_functions()
        self.start_runtime()

    def before_the_runtime(self) -> None:
        """Before the runtime first starts, records and committed offsets for the ingresses
        of module.yaml that start at a position:

        - ``unpositioned`` (no ``startupPosition``): offset 0 committed for its group, then
          the record ``A-<partition>`` on each partition, which group-offsets (and earliest)
          would take and latest would not;
        - ``dated`` (a date after every record; reset position earliest): ``dated-A-<partition>``
          on each partition, dated two hours ago, which the reset position would take and the
          end would not;
        - ``specific`` (offset 1 of partition 0 only; reset position earliest):
          ``specific-A-<partition>-<n>`` for n of 0 and 1 on each partition, and offset 1
          committed for its group on partition 1, where group-offsets would start.
        """
        from confluent_kafka import Producer

        from statefun_core import StringType

        self._commit(self.topic("unpositioned"), {0: 0, 1: 0})
        self._commit(self.topic("specific"), {1: 1})
        producer = Producer({"bootstrap.servers": self.kafka.bootstrap})
        value = StringType.serializer().serialize("A")
        two_hours_ago = int((time.time() - 7200) * 1000)
        for partition in (0, 1):
            for topic, keys in (
                ("unpositioned", [f"A-{partition}"]),
                ("dated", [f"dated-A-{partition}"]),
                ("specific", [f"specific-A-{partition}-{n}" for n in (0, 1)]),
            ):
                for key in keys:
                    producer.produce(self.topic(topic), key=key.encode(), partition=partition,
                                     value=value, timestamp=two_hours_ago)  # fmt: skip
        if producer.flush(30):
            raise RuntimeError("records before the runtime not delivered within 30 s")

    def _commit(self, topic: str, offsets: dict[int, int]) -> None:
        """The ``offsets`` of ``topic``'s partitions committed for the group named as the topic
        (the ingress' ``consumerGroupId``)."""
        from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

        committer = Consumer({"bootstrap.servers": self.kafka.bootstrap, "group.id": topic})
        # the first group on a new broker waits for __consumer_offsets and its coordinator
        waiting = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                   KafkaError.COORDINATOR_LOAD_IN_PROGRESS}  # fmt: skip
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    committer.commit(offsets=[TopicPartition(topic, partition, offset)
                                              for partition, offset in offsets.items()],
                                     asynchronous=False)  # fmt: skip
                    return
                except KafkaException as error:
                    if error.args[0].code() not in waiting or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            committer.close()

    def start_functions(self, **settings: str) -> None:
        """Start (or redeploy, with ``settings`` in its environment) the function server, and
        point module.yaml at it."""
        if self.tls is not None:
            settings = {"SERVE_TLS": str(self.tls), **settings}
        with timed(f"{self.framework}: start the function server"):
            self.functions, self.functions_port = start_function_server(
                self.framework, self.workdir, self.prefix, **settings
            )
        scheme = "http" if self.tls is None else "https"
        url = f"{scheme}://127.0.0.1:{self.functions_port}{function_path(self.framework)}"
        self.module = render_module(self.workdir, url, self.kafka.bootstrap, self.prefix,
                                    template=self.template, sasl_kafka=self.kafka.sasl_bootstrap,
                                    tls=self.tls)  # fmt: skip

    def redeploy_functions(self, **settings: str) -> None:
        """Stop the function server and start it again at the same URL, with ``settings`` in
        its environment: the runtime runs on, its calls retried meanwhile."""
        assert self.functions is not None
        self.functions.stop()
        with timed(f"{self.framework}: redeploy the function server"):
            self.functions, _ = start_function_server(self.framework, self.workdir, self.prefix,
                                                      self.functions_port, **settings)  # fmt: skip

    def start_runtime(self) -> None:
        assert self.module is not None
        self.job = self.runtime.start(self.module, self.workdir)

    def send(self, topic: str, records: Iterable[tuple[Union[str, bytes], bytes]]) -> None:
        self.kafka.produce(self.topic(topic), records)

    def read(self, topic: str, count: int, **options: Any) -> list[Record]:
        return self.kafka.read(self.topic(topic), count, **options)

    def stop(self) -> None:
        for process in (self.job, self.functions):
            if process is not None:
                process.stop()


@dataclass
class LocalRuntime:
    """statefun-local, run as its CLI runs it: ``statefun-local run module.yaml``."""

    name: str = "statefun-local"

    def start(self, module: Path, workdir: Path) -> tuple[Process, int]:
        port = free_port()
        command = [sys.executable, "-m", "statefun_local", "run", str(module),
                   "--db", str(workdir / "local.db"), "--port", str(port)]  # fmt: skip
        process = Process(self.name, command, workdir / f"{self.name}.log")
        wait_for_port(port, process, 60)
        return process, port


LOCAL = LocalRuntime()


class LocalApplication(Application):
    """The same application on statefun-local, Kafka in and Kafka out like the others."""

    port = 0  # of its web page and HTTP API

    def start_runtime(self) -> None:
        assert self.module is not None
        self.job, self.port = LOCAL.start(self.module, self.workdir)


class LocalWithFunctions:
    """statefun-local and a function server of its own, on names made for one test, for tests
    of statefun-local's connectors that write their module themselves."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.prefix = f"local-{uuid.uuid4().hex[:6]}-"
        self.functions, port = start_function_server("aiohttp", workdir, self.prefix)
        self.url = f"http://127.0.0.1:{port}/statefun"
        self.runtime: Optional[Process] = None
        self.port = 0

    def start_module(self, text: str) -> None:
        module = self.workdir / "module.yaml"
        module.write_text(text)
        self.runtime, self.port = LOCAL.start(module, self.workdir)

    def connection(self, kind: str) -> dict[str, Any]:
        """Its ``kind`` connection (ingress, egress) as ``/api/status`` shows it."""
        import json
        import urllib.request

        url = f"http://127.0.0.1:{self.port}/api/status"
        with urllib.request.urlopen(url, timeout=30) as reply:
            status = json.load(reply)
        found: dict[str, Any] = next(c for c in status["connections"] if c["kind"] == kind)
        return found

    def wait_for(self, kind: str, timeout: float = 60, **expected: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.connection(kind)
            if all(found.get(key) == value for key, value in expected.items()):
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{kind} never had {expected}: {found}")
            time.sleep(0.2)

    def stop(self) -> None:
        for process in (self.runtime, self.functions):
            if process is not None:
                process.stop()
