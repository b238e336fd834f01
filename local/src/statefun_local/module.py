"""Reading a StateFun 3.x ``module.yaml``: endpoints, ingresses and egresses.

The same file deploys on Apache Flink StateFun, so this accepts what the reference runtime
accepts for the kinds it knows and reports every problem with its file, document and field.
"""

from __future__ import annotations

import base64
import datetime
import difflib
import functools
import re
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union
from urllib.parse import quote, unquote, urlsplit

import yaml

__all__ = [
    "ASYNC_TRANSPORT",
    "OKHTTP_TRANSPORT",
    "PLAYGROUND_EGRESS",
    "PLAYGROUND_INGRESS",
    "Egress",
    "Endpoint",
    "Ingress",
    "Module",
    "ModuleError",
    "Tls",
    "load_module",
    "parse_duration",
    "parse_module",
]

ENDPOINTS_V1 = "io.statefun.endpoints.v1/http"
ENDPOINTS_V2 = "io.statefun.endpoints.v2/http"
KAFKA_INGRESS = "io.statefun.kafka.v1/ingress"
KAFKA_EGRESS = "io.statefun.kafka.v1/egress"
KINESIS_INGRESS = "io.statefun.kinesis.v1/ingress"
KINESIS_EGRESS = "io.statefun.kinesis.v1/egress"
#: the HTTP ingress and egress of Apache's StateFun playground image (its Python greeter uses them)
PLAYGROUND_INGRESS = "io.statefun.playground.v1/ingress"
PLAYGROUND_EGRESS = "io.statefun.playground.v1/egress"
PLAYGROUND_INGRESS_ID = "io.statefun.playground/ingress"
PLAYGROUND_EGRESS_ID = "io.statefun.playground/egress"
ASYNC_TRANSPORT = "io.statefun.transports.v1/async"
OKHTTP_TRANSPORT = "io.statefun.transports.v1/okhttp"

DEFAULT_MAX_NUM_BATCH_REQUESTS = 1000
_DEFAULT_PAYLOAD_MAX = 33_554_432
#: the async transport's connections to one function type, at most (Netty's pool)
_DEFAULT_POOL_SIZE = 1024


class ModuleError(ValueError):
    """One or more problems in a module file; ``problems`` lists each as one line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid module:\n  " + "\n  ".join(problems))
        self.problems = problems


# --- durations -------------------------------------------------------------------------------

_UNITS_MS = {
    **dict.fromkeys(("ns", "nano", "nanos", "nanosecond", "nanoseconds"), 1e-6),
    **dict.fromkeys(("us", "µs", "micro", "micros", "microsecond", "microseconds"), 1e-3),
    **dict.fromkeys(("ms", "milli", "millis", "millisecond", "milliseconds"), 1.0),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1000.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60_000.0),
    **dict.fromkeys(("h", "hour", "hours"), 3_600_000.0),
    **dict.fromkeys(("d", "day", "days"), 86_400_000.0),
}
_DURATION = re.compile(r"^\s*(\d+)\s*([a-zµ]*)\s*$", re.IGNORECASE)


#: Java's ``int`` and ``long``: the runtime keeps counts and most milliseconds in an ``int``
_MAX_INT = 2**31 - 1
_MAX_LONG = 2**63 - 1


def parse_duration(text: Union[str, int]) -> float:
    """A StateFun (Flink) duration such as ``2 min``, ``500ms`` or ``10`` (ms), in seconds."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"a duration can not be negative: {text}")
        number, unit = text, "ms"
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise ValueError(f"not a duration: {text!r} (expected e.g. '10s', '2 min', '500ms')")
        digits, unit = match.groups()
        unit = unit.lower() or "ms"
        if unit not in _UNITS_MS:
            raise ValueError(f"unknown time unit {unit!r} in {text!r}")
        number = int(digits)
    # Flink reads the number as a long and the duration as a java.time.Duration (seconds: a long)
    if number > _MAX_LONG or number * _UNITS_MS[unit] / 1000.0 > _MAX_LONG:
        raise ValueError(f"{text!r} is too long a duration (numeric overflow)")
    return number * _UNITS_MS[unit] / 1000.0


# --- the model -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tls:
    """The async transport's TLS files, as paths: the CA certificates trusted instead of the
    system's (PEM), and for mutual TLS the client's certificate, its PKCS#8 key and a file
    holding the key's password."""

    trust_cacerts: Optional[str] = None
    client_cert: Optional[str] = None
    client_key: Optional[str] = None
    client_key_password: Optional[str] = None

    @functools.cached_property
    def context(self) -> ssl.SSLContext:
        """A client context with these files loaded, once (``OSError``, ``ssl.SSLError`` or
        ``ValueError`` if they do not load). The server's certificate must chain to the CAs,
        but its names are not checked against the URL's host: StateFun 3.3's Netty 4.1 client
        does not check them either."""
        context = ssl.create_default_context(cafile=self.trust_cacerts)
        context.check_hostname = False  # still CERT_REQUIRED
        if self.client_cert is not None:
            context.load_cert_chain(self.client_cert, self.client_key, self._password)
        return context

    def _password(self) -> str:
        """The key's password, asked for only if the key is encrypted: never OpenSSL's prompt
        on the terminal."""
        if self.client_key_password is None:
            raise ValueError("client_key is encrypted: give its password (client_key_password)")
        # the whole file, as the runtime reads it
        return Path(self.client_key_password).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Endpoint:
    """Where the functions of one type (or of a whole namespace, ``ns/*``) are served."""

    functions: str
    url_path_template: str
    max_num_batch_requests: int = DEFAULT_MAX_NUM_BATCH_REQUESTS
    transport: str = ASYNC_TRANSPORT
    call_timeout: float = 120.0
    connect_timeout: float = 20.0
    payload_max_bytes: int = _DEFAULT_PAYLOAD_MAX
    #: the async transport's connections to one function type at most (0: OkHttp's, unbounded)
    pool_size: int = _DEFAULT_POOL_SIZE
    #: seconds a connection of the async transport's pool lives (0: for ever), as the runtime's
    pool_ttl: float = 0.0
    #: for ``https`` URLs with the async transport; None: the system's CAs, no client cert
    tls: Optional[Tls] = None
    source: str = ""

    @property
    def is_wildcard(self) -> bool:
        return self.functions.endswith("/*")

    @property
    def namespace(self) -> str:
        return self.functions.split("/", 1)[0]

    def url_for(self, function_type: str) -> str:
        """The URL to call for ``function_type`` (``namespace/name``): ``{function.name}``
        percent-encoded, so a name can not reach another path, a query or a fragment."""
        name = function_type.split("/", 1)[1]
        if name in (".", ".."):
            raise ValueError(f"{function_type!r}: '.' and '..' are not function names")
        return self.url_path_template.replace("{function.name}", quote(name, safe=""))


@dataclass(frozen=True)
class StartupPosition:
    """Where an ingress starts reading a partition (shard) it has no position for: StateFun's
    ``startupPosition``; ``reset`` is Kafka's ``autoOffsetResetPosition``."""

    position: str = "latest"
    #: ``specific-offsets``: (topic, partition) -> offset
    offsets: tuple[tuple[str, int, int], ...] = ()
    #: ``date``: milliseconds since the epoch
    date_ms: int = 0
    reset: str = "latest"


@dataclass(frozen=True)
class Aws:
    """Where a Kinesis ingress or egress connects (``awsRegion``, ``awsCredentials``)."""

    region: str = ""  # empty: the AWS SDK's default
    endpoint: str = ""  # ``custom-endpoint``
    access_key_id: str = ""  # ``basic`` credentials
    secret_access_key: str = ""
    profile: str = ""  # ``profile`` credentials


@dataclass(frozen=True)
class Ingress:
    """A Kafka or Kinesis ingress: its records come from the broker (Kafka) or over HTTP; or
    the playground's, messages over HTTP on its ``port``."""

    id: str
    kind: str
    # (topic or stream, valueType, target function types)
    routes: tuple[tuple[str, str, tuple[str, ...]], ...] = ()
    source: str = ""
    address: str = ""
    group: str = ""
    startup: StartupPosition = StartupPosition()
    #: the client ``properties`` (Kinesis: ``clientConfigProperties``) of the module, in order
    properties: tuple[tuple[str, str], ...] = ()
    aws: Aws = Aws()
    port: int = 0


@dataclass(frozen=True)
class Egress:
    """A Kafka or Kinesis egress: its records are stored, and produced to Kafka; or the
    playground's, its records stored and read one at a time from its ``port``."""

    id: str
    kind: str
    source: str = ""
    address: str = ""
    #: ``exactly-once``, ``at-least-once`` or ``none``
    semantic: str = "at-least-once"
    transaction_timeout_ms: int = 0
    properties: tuple[tuple[str, str], ...] = ()
    aws: Aws = Aws()
    port: int = 0
    #: the playground egress' topics
    topics: tuple[str, ...] = ()

    @property
    def is_kafka(self) -> bool:
        return self.kind == KAFKA_EGRESS


@dataclass
class Module:
    endpoints: list[Endpoint] = field(default_factory=list)
    ingresses: dict[str, Ingress] = field(default_factory=dict)
    egresses: dict[str, Egress] = field(default_factory=dict)
    #: what the module holds that the runtime runs but likely not as meant (a key it ignores,
    #: an ingress target no endpoint serves): logged when a runtime starts
    warnings: list[str] = field(default_factory=list)

    def endpoint_for(self, function_type: str) -> Optional[Endpoint]:
        """The endpoint serving ``function_type``; an exact binding wins over a wildcard."""
        namespace = function_type.rpartition("/")[0]
        wildcard = None
        for endpoint in self.endpoints:
            if endpoint.functions == function_type:
                return endpoint
            if endpoint.is_wildcard and endpoint.namespace == namespace:
                wildcard = endpoint
        return wildcard


# --- parsing ---------------------------------------------------------------------------------


#: Module files without functions (an empty file, the wrong one): the runtime refuses them
#: ("There are no function providers defined"); here every message would be refused.
_NO_ENDPOINT = (
    "{}: no function endpoint (io.statefun.endpoints.v2/http): the runtime refuses "
    "a module without functions (is this the module file?)"
)


def load_module(*paths: Union[str, Path]) -> Module:
    """Read and validate one or more module files into one :class:`Module`, which must have
    a function endpoint (:func:`parse_module` reads any part of a module)."""
    module = Module()
    problems: list[str] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            problems.append(f"{path}: can not read: {exc.strerror or exc}")
            continue
        except UnicodeDecodeError as exc:
            problems.append(f"{path}: can not read: not UTF-8 text ({exc})")
            continue
        _parse_into(module, text, str(path), problems)
    if not module.endpoints and not problems:
        problems.append(_NO_ENDPOINT.format(", ".join(map(str, paths))))
    return _checked(module, problems)


def parse_module(text: str, filename: str = "<module.yaml>") -> Module:
    """Parse and validate the text of a module file."""
    module = Module()
    problems: list[str] = []
    _parse_into(module, text, filename, problems)
    return _checked(module, problems)


def _checked(module: Module, problems: list[str]) -> Module:
    """The module read, once whole: a ``ModuleError`` if any part had problems, else with
    the warnings only the whole module can tell."""
    if problems:
        raise ModuleError(problems)
    _check_targets(module)
    _check_unix_sockets(module)
    return module


def _check_targets(module: Module) -> None:
    for ingress in module.ingresses.values():
        for source, _, targets in ingress.routes:
            for target in targets:
                if module.endpoint_for(target) is None:
                    module.warnings.append(
                        f"{ingress.source}: ingress {ingress.id}, {source}: no endpoint in the "
                        f"module serves the target {target}: its records will fail"
                    )


def _check_unix_sockets(module: Module) -> None:
    """StateFun 3.3 shares one OkHttp connection pool between its endpoints and calls every
    unix socket at the host ``unused``; the pool tells connections apart by host, not by socket,
    so a call reuses an idle connection to whichever socket it was opened on (seen in the e2e
    kit: six endpoints on six sockets, every call on the first one)."""
    unix = [e for e in module.endpoints if is_unix_url(e.url_path_template)]
    sockets = dict.fromkeys(split_unix_url(e.url_path_template)[0] for e in unix)
    if len(sockets) > 1 or any("{function.name}" in socket for socket in sockets):
        module.warnings.append(
            f"{unix[0].source}: endpoints on more than one unix socket ({', '.join(sockets)}): "
            "Apache StateFun 3.3 pools the connections to every unix socket as one, so its "
            "calls can go to another endpoint's socket; serve them all on one socket "
            "(statefun-local calls each endpoint on its own)"
        )


class _Document:
    """One YAML document being read; collects problems with their location, and the keys
    read, so that those no parser read (a typo, which the runtime ignores) can be named."""

    def __init__(self, where: str, problems: list[str], directory: Path = Path(".")) -> None:
        self.where = where
        #: where ``classpath:`` files are looked for: beside the module file, which is the
        #: runtime's ``classpath:module.yaml``
        self.directory = directory
        self.problems = problems
        self.read: set[tuple[int, Any]] = set()  # (id of a mapping, key)
        self.opaque: set[int] = set()  # ids of values read whole (client properties)

    def seen(self, node: dict[str, Any], key: str, opaque: bool = False) -> Any:
        """``node[key]`` (None if absent), read by a parser; ``opaque``: with whatever it
        holds (free-form)."""
        self.read.add((id(node), key))
        value = node.get(key)
        if opaque:
            self.opaque.add(id(value))
        return value

    def unread(self, node: Any, path: str) -> Iterator[str]:
        """The paths of the keys under ``node`` that no parser read."""
        if id(node) in self.opaque:
            return
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from self.unread(item, f"{path}[{index}]")
        elif isinstance(node, dict):
            for key, value in node.items():
                if (id(node), key) in self.read:
                    yield from self.unread(value, f"{path}.{key}")
                else:
                    yield f"{path}.{key}"

    def problem(self, path: str, message: str) -> None:
        where = f"{self.where}: {path}" if path else self.where
        self.problems.append(f"{where}: {message}")

    def get(
        self,
        node: dict[str, Any],
        path: str,
        key: str,
        convert: Callable[[Any], Any],
        default: Any = None,
        required: bool = False,
    ) -> Any:
        full = f"{path}.{key}" if path else key
        self.read.add((id(node), key))
        if key not in node or node[key] is None:
            if required:
                self.problem(full, "is required" + _given_as(node, key))
            return default
        try:
            return convert(node[key])
        except (TypeError, ValueError) as exc:
            self.problem(full, str(exc))
            return default

    def mapping(self, node: dict[str, Any], path: str, key: str) -> dict[str, Any]:
        value = self.seen(node, key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(f"{path}.{key}" if path else key, "must be a mapping")
            return {}
        return value


def _given_as(node: dict[str, Any], key: str) -> str:
    """For a required key that is missing: the key beside it spelled nearly so, if any (a
    typo, which the unknown-key warning would name, but a module with a problem is not
    loaded, and its warnings are not shown)."""
    others = [other for other in node if isinstance(other, str) and other != key]
    nearest = difflib.get_close_matches(key, others, n=1, cutoff=0.75)
    return f" (given as {nearest[0]!r}?)" if nearest else ""


def _typename(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a typename 'namespace/name', got {value!r}")
    namespace, slash, name = value.partition("/")
    if not namespace or not slash or not name or "/" in name:
        raise ValueError(f"must be a typename 'namespace/name', got {value!r}")
    return value


def _function_binding(value: Any) -> str:
    typename = _typename(value)
    namespace, name = typename.split("/")
    if "*" in namespace or ("*" in name and name != "*"):
        raise ValueError(f"'*' may only stand for the whole function name ('ns/*'), got {value!r}")
    return typename


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"must be an integer, got {value!r}")
    return value


def _int32(value: Any) -> int:
    """An integer the runtime reads into a Java ``int``."""
    number = _integer(value)
    if not -_MAX_INT - 1 <= number <= _MAX_INT:
        raise ValueError(f"must fit in a 32-bit integer (at most {_MAX_INT}), got {number}")
    return number


def _count(why: str) -> Callable[[Any], int]:
    """A Java ``int`` of at least 1; ``why`` says what 0 or less would do."""

    def check(value: Any) -> int:
        number = _int32(value)
        if number < 1:
            raise ValueError(f"must be at least 1, got {number}: {why}")
        return number

    return check


def _timeout(zero: str = "", max_ms: int = _MAX_INT) -> Callable[[Any], float]:
    """A duration the runtime uses as a timeout, in seconds: ``zero`` says why 0 is refused
    (empty: 0 is accepted, and means no timeout); between 0 and 1 ms is refused, the runtime
    counting whole milliseconds (it would round it down to 0, i.e. no timeout, or time out every
    request); and at most ``max_ms`` milliseconds, what the runtime's clients can hold."""

    def check(value: Any) -> float:
        seconds = parse_duration(value)
        if seconds == 0 and zero:
            raise ValueError(f"must be more than 0, got {value!r}: {zero}")
        if 0 < seconds < 0.001:
            whole = "the runtime counts timeouts in whole milliseconds"
            raise ValueError(f"must be at least 1 ms, got {value!r} ({whole})")
        if seconds * 1000 > max_ms:
            raise ValueError(f"must be at most {max_ms} ms, got {value!r}")
        return seconds

    return check


#: the runtime refuses a zero timeout of OkHttp and of the async transport's ``timeouts``
_REFUSED_ZERO = "the runtime refuses a zero timeout"
#: the async transport keeps its call budget in nanoseconds (a Java long)
_MAX_CALL_MS = _MAX_LONG // 1_000_000


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"must be a non-empty string, got {value!r}")
    return value


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return str(value)

    return check


def _url_template(value: Any) -> str:
    url = _string(value)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in ("http", "https", "http+unix", "https+unix"):
        raise ValueError(f"must be an http://, https:// or http+unix:// URL, got {url!r}")
    if is_unix_url(url) and _socket_file_names(url) is None:
        raise ValueError(f"a {scheme} URL names a socket file ending in .sock, got {url!r}")
    _check_uri_characters(url)
    return url


def _check_uri_characters(template: str) -> None:
    """The runtime makes each function's URL a ``java.net.URI`` (UrlPathTemplate), which
    refuses a space, a brace and the like: each call of the endpoint would fail."""
    url = template.replace("{function.name}", "x")
    invalid = _NOT_IN_A_URI.search(url)
    if invalid is None:
        return
    placeholder = _PLACEHOLDER.search(url)
    if placeholder is not None:
        raise ValueError(
            f"{placeholder.group()} is not replaced (the runtime replaces {{function.name}} "
            "only), and its URI parser (java.net.URI) refuses a brace: every call would fail"
        )
    what = invalid.group()
    hint = "a % is %25" if what == "%" else "a space is %20"
    raise ValueError(
        f"{what!r} in {template!r} is refused by the runtime's URI parser (java.net.URI): every "
        f"call would fail; percent-encode it ({hint})"
    )


def is_unix_url(url: str) -> bool:
    """Whether ``url`` is an ``http+unix`` or ``https+unix`` one, its scheme in any case."""
    return url.split("://", 1)[0].lower() in ("http+unix", "https+unix")


def _socket_file_names(url: str) -> Optional[tuple[list[str], int]]:
    """The names of a unix URL's path and the index of the socket file's, or None when no name
    ends in ``.sock``. As the runtime's UnixDomainHttpEndpoint reads it: the URI's path
    (``getPath()``: percent-decoded, the host and any user or port left out), split into names
    as ``Paths.get`` does (empty ones dropped), the socket file the first ending in ``.sock``."""
    names = [name for name in unquote(urlsplit(url).path).split("/") if name]
    index = next((i for i, name in enumerate(names) if name.endswith(".sock")), None)
    return None if index is None else (names, index)


#: What OkHttp's ``HttpUrl.Builder.addPathSegment`` escapes, besides control characters and
#: anything beyond ASCII.
_OKHTTP_SEGMENT_ESCAPED = frozenset(' "<>^`{}|/\\?#%')


def _okhttp_path_segment(segment: str) -> str:
    return "".join(
        "".join(f"%{byte:02X}" for byte in char.encode())
        if char in _OKHTTP_SEGMENT_ESCAPED or not " " <= char < "\x7f"
        else char
        for char in segment
    )


def split_unix_url(url: str) -> tuple[str, str]:
    """``http+unix:///run/fn.sock/statefun`` -> (``/run/fn.sock``, ``http://unused/%2Fstatefun``):
    the socket file and the request StateFun 3.3 sends on it. Its UnixDomainHttpEndpoint reads
    the URI's decoded path (the host ignored: ``http+unix://localhost/run/fn.sock`` is
    ``/run/fn.sock``, and ``/my%20fns/fn.sock`` is ``/my fns/fn.sock``), and takes the path
    below the socket file (empty names dropped, query and fragment left out) as the one path
    segment ``/statefun``, or ``/`` when there is none, which OkHttp escapes, slashes included;
    the host is ``unused`` and the scheme http, https+unix too."""
    found = _socket_file_names(url)
    if found is None:
        raise ValueError(f"{url!r} names no socket file ending in .sock")
    names, index = found
    segment = "/" + "/".join(names[index + 1 :])
    return "/" + "/".join(names[: index + 1]), f"http://unused/{_okhttp_path_segment(segment)}"


def _parse_into(module: Module, text: str, filename: str, problems: list[str]) -> None:
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        problems.append(f"{filename}: not valid YAML: {exc}")
        return
    located = [(f"{filename}: document {index}", document)
               for index, document in enumerate(documents)]  # fmt: skip
    if len(documents) == 1 and isinstance(documents[0], dict) and "version" in documents[0]:
        located = _from_format_v30(documents[0], f"{filename}: ", problems)
    for where, document in located:
        if document is None:
            continue  # an empty document, e.g. a leading or trailing '---'
        doc = _Document(where, problems, Path(filename).parent)
        if not isinstance(document, dict):
            doc.problem("", "must be a mapping with 'kind' and 'spec'")
            continue
        if "module" in document and "kind" not in document:
            if "version" in document:  # read as the 3.0 format only when alone in its file
                doc.problem("", "a module in the StateFun 3.0 format must be its file's only "
                            "document")  # fmt: skip
            else:
                doc.problem("version", 'is required in the StateFun 3.0 format: version: "3.0"')
            continue
        kind = document.get("kind")
        spec = document.get("spec")
        if not isinstance(kind, str):
            doc.problem("kind", "is required")
            continue
        if not isinstance(spec, dict):
            doc.problem("spec", "is required and must be a mapping")
            continue
        parser = _PARSERS.get(kind)
        if parser is None:
            doc.problem("kind", f"unknown kind {kind!r} (known: {', '.join(sorted(_PARSERS))})")
            continue
        doc.where = f"{doc.where} ({kind})"
        parser(module, spec, doc)
        module.warnings += [f"{doc.where}: {path}: not a key of this kind: ignored (a typo?)"
                            for path in doc.unread(spec, "spec")]  # fmt: skip


#: The kinds of the StateFun 3.0 format, as the runtime converts them (any other is taken as is)
_V30_KINDS = {
    "http": ENDPOINTS_V1,
    "io.statefun.kafka/ingress": KAFKA_INGRESS,
    "io.statefun.kafka/egress": KAFKA_EGRESS,
    "io.statefun.kinesis/ingress": KINESIS_INGRESS,
    "io.statefun.kinesis/egress": KINESIS_EGRESS,
}


def _from_format_v30(
    root: dict[str, Any], where: str, problems: list[str]
) -> list[tuple[str, Any]]:
    """The ``kind``/``spec`` documents of a module in the StateFun 3.0 format (one document
    with ``version: "3.0"`` and ``module: {meta: {type: remote}, spec: ...}``), which the
    runtime still reads (its ``LegacyRemoteModuleV30``) and converts so: each of
    ``spec.endpoints``' ``endpoint``, ``spec.ingresses``' ``ingress`` and ``spec.egresses``'
    ``egress`` is a document of its ``meta``'s kind (``type`` for the last two, whose
    ``meta.id`` becomes the spec's ``id``) with its ``spec``."""
    version = root["version"]
    if not isinstance(version, str):
        problems.append(f'{where}version: must be a string, as in version: "3.0" (got {version!r})')
        return []
    if version in ("1.0", "2.0"):
        problems.append(f"{where}version: format {version} is no longer read; 3.0 is the oldest")
        return []
    if version != "3.0":
        problems.append(f"{where}version: {version!r} is no format version the runtime reads "
                        "(3.0, or 'kind'/'spec' documents without a version)")  # fmt: skip
        return []
    module = _mapping_or_empty(root.get("module"))
    module_type = _mapping_or_empty(module.get("meta")).get("type")
    if not isinstance(module_type, str) or module_type.lower() != "remote":
        problems.append(f"{where}module.meta.type: must be remote, got {module_type!r}")
        return []
    spec = module.get("spec")
    if not isinstance(spec, dict):
        problems.append(f"{where}module.spec: is required and must be a mapping")
        return []
    located: list[tuple[str, Any]] = []
    for section, name, kind_key in (("endpoints", "endpoint", "kind"),
                                    ("ingresses", "ingress", "type"),
                                    ("egresses", "egress", "type")):  # fmt: skip
        items = spec.get(section) or []
        if not isinstance(items, list):
            problems.append(f"{where}module.spec.{section}: must be a list")
            continue
        for index, item in enumerate(items):
            path = f"module.spec.{section}[{index}].{name}"
            component = _mapping_or_empty(_mapping_or_empty(item).get(name))
            meta = _mapping_or_empty(component.get("meta"))
            kind = meta.get(kind_key)
            if not isinstance(kind, str):
                problems.append(f"{where}{path}.meta.{kind_key}: is required")
                continue
            component_spec = component.get("spec")
            if name != "endpoint":
                if not isinstance(meta.get("id"), str):
                    problems.append(f"{where}{path}.meta.id: is required")
                    continue
                if isinstance(component_spec, dict):
                    component_spec = {**component_spec, "id": meta["id"]}
            located.append((f"{where}{path}", {"kind": _V30_KINDS.get(kind, kind),
                                               "spec": component_spec}))  # fmt: skip
    return located


def _mapping_or_empty(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _parse_endpoint_v2(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    transport = doc.mapping(spec, "spec", "transport")
    path = "spec.transport"
    kinds = _one_of(ASYNC_TRANSPORT, OKHTTP_TRANSPORT)
    transport_type = doc.get(transport, path, "type", kinds, default=ASYNC_TRANSPORT)
    if transport_type == OKHTTP_TRANSPORT:
        # OkHttp reads only ``timeouts``: payload_max_bytes, pool_* and the rest are ignored
        call, connect = _okhttp_timeouts(doc, transport, path)
        _add_endpoint(module, spec, doc, transport_type, call, connect, _DEFAULT_PAYLOAD_MAX, 0)
        return
    timeouts = doc.mapping(transport, path, "timeouts")
    if isinstance(doc.seen(transport, "timeouts"), dict):
        # the compatibility form wins when present (even empty), with its own defaults; the
        # flat call and connect are still read, so they must parse
        doc.get(transport, path, "call", parse_duration)
        doc.get(transport, path, "connect", parse_duration)
        nested = f"{path}.timeouts"
        call = doc.get(timeouts, nested, "call", _timeout(_REFUSED_ZERO, _MAX_CALL_MS), 60.0)
        connect = doc.get(timeouts, nested, "connect", _timeout(_REFUSED_ZERO), 10.0)
    else:
        zero_call = "every request would time out"
        call = doc.get(transport, path, "call", _timeout(zero_call, _MAX_CALL_MS), 120.0)
        connect = doc.get(transport, path, "connect", _timeout(), 20.0)  # 0: none
    pool_ttl = doc.get(transport, path, "pool_ttl", parse_duration, 15.0)  # 0: none
    no_connection = _count("the connection pool would hold no connection")
    pool_size = doc.get(transport, path, "pool_size", no_connection, _DEFAULT_POOL_SIZE)
    payload_max = doc.get(
        transport, path, "payload_max_bytes", _count("no reply would fit"), _DEFAULT_PAYLOAD_MAX
    )
    tls = _tls(module, doc, spec, transport, path)
    _add_endpoint(
        module, spec, doc, transport_type, call, connect, payload_max, pool_size, tls, pool_ttl
    )


def _tls(
    module: Module, doc: _Document, spec: dict[str, Any], transport: dict[str, Any], path: str
) -> Optional[Tls]:
    """The TLS files of an ``https`` endpoint, checked by loading them as the runtime does
    when it starts; the runtime does not read them for another URL."""
    given = [key for key in _TLS_FILES if doc.seen(transport, key) is not None]
    url = spec.get("urlPathTemplate")
    if given and not (isinstance(url, str) and url.lower().startswith("https://")):
        module.warnings.append(
            f"{doc.where}: {path}: {', '.join(given)} ignored, as by the runtime: "
            "the URL is not https"
        )
        return None
    located = _file_location(doc.directory)
    reported = len(doc.problems)
    files = {key: doc.get(transport, path, key, located) for key in _TLS_FILES}
    if not any(files.values()) or len(doc.problems) > reported:
        return None  # none given, or one already reported
    if (files["client_cert"] is None) != (files["client_key"] is None):
        doc.problem(path, "client_cert and client_key go together: mutual TLS needs both")
        return None
    tls = Tls(**files)
    try:
        tls.context  # noqa: B018 (loads the files)
    except (OSError, ssl.SSLError, ValueError) as exc:  # UnicodeDecodeError: a ValueError
        hint = ""
        if _ends_a_line(tls.client_key_password):
            hint = " (the password is the whole file, as the runtime reads it: its last line ends)"
        doc.problem(path, f"the TLS files do not load: {exc}{hint}")
        return None
    if tls.client_key is not None and _pbes2(tls.client_key):
        module.warnings.append(
            f"{doc.where}: {path}.client_key: encrypted with PBES2 (openssl's and Python's "
            "default), which StateFun 3.3's runtime cannot read (its Netty: \"PBES2 "
            'SecretKeyFactory not available"): encrypt it with PBES1 (openssl pkcs8 -topk8 -v1 '
            "PBE-SHA1-3DES), or not at all"
        )
    return tls


def _ends_a_line(password: Optional[str]) -> bool:
    try:
        return password is not None and Path(password).read_bytes().endswith(b"\n")
    except OSError:
        return False


#: the DER of PBES2's object identifier, 1.2.840.113549.1.5.13
_PBES2_OID = bytes.fromhex("06092a864886f70d01050d")


def _pbes2(key: str) -> bool:
    """Whether the PEM file ``key`` holds a PKCS#8 key encrypted with PBES2."""
    text = Path(key).read_text(encoding="ascii", errors="replace")
    found = re.search(r"-----BEGIN ENCRYPTED PRIVATE KEY-----(.*?)-----END", text, re.DOTALL)
    if found is None:
        return False
    try:
        return _PBES2_OID in base64.b64decode("".join(found.group(1).split()))
    except ValueError:
        return False


_TLS_FILES = ("trust_cacerts", "client_cert", "client_key", "client_key_password")


def _file_location(directory: Path) -> Callable[[Any], str]:
    """A file as the runtime names one (its ``ResourceLocator``): a URI, so no space and no
    ``~`` expanded; a ``file:`` URL, ``classpath:`` (a job resource, looked for beside the
    module file), or without a scheme a path."""

    def check(value: Any) -> str:
        location = _string(value)
        invalid = _NOT_IN_A_URI.search(location)
        if invalid is not None:
            raise ValueError(
                f"is not a URI, which the runtime reads it as: {invalid.group()!r} in "
                f"{location!r} (a space is %20, in a file: URL)"
            )
        scheme = _SCHEME.match(location)
        name, rest = (scheme.group(1).lower(), location[scheme.end() :]) if scheme else ("", "")
        beside = ""
        if name == "classpath":
            where = directory / unquote(rest).lstrip("/")
            beside = " (classpath: is read beside the module file)"
        elif name == "file":
            where = Path(unquote(urlsplit(location).path))
        elif name:
            raise ValueError(f"must be a file: a path, file: or classpath:, got {location!r}")
        else:
            where = Path(unquote(location))
            if location.startswith("~"):
                beside = " (the runtime does not expand ~)"
        if not where.is_file():
            raise ValueError(f"no file {str(where)!r}{beside}")
        return str(where)

    return check


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_NOT_IN_A_URI = re.compile(r'[\s"<>\\^`{|}]|%(?![0-9A-Fa-f]{2})')


def _parse_endpoint_v1(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    call, connect = _okhttp_timeouts(doc, spec, "spec")
    _add_endpoint(module, spec, doc, OKHTTP_TRANSPORT, call, connect, _DEFAULT_PAYLOAD_MAX, 0)


def _okhttp_timeouts(doc: _Document, node: dict[str, Any], path: str) -> tuple[float, float]:
    """The runtime checks the four timeouts with the defaults of those not given: a call
    timeout under 10 s needs connect, read and write given too, each at most call."""
    timeouts = doc.mapping(node, path, "timeouts")
    path = f"{path}.timeouts"
    call = doc.get(timeouts, path, "call", _timeout(_REFUSED_ZERO), 60.0)
    values = {"call": call}
    for name in ("connect", "read", "write"):
        if doc.seen(timeouts, name) is None:
            values[name] = 10.0
            what = "(not given: 10 s)"
        else:
            values[name] = doc.get(timeouts, path, name, _timeout(_REFUSED_ZERO))
            if values[name] is None:  # reported
                continue
            what = f"({values[name]:g} s)"
        if values[name] > call:
            doc.problem(f"{path}.{name}", f"{what} may not exceed call ({call:g} s)")
    return call, values.get("connect", 10.0)


def _add_endpoint(
    module: Module,
    spec: dict[str, Any],
    doc: _Document,
    transport: str,
    call: float,
    connect: float,
    payload_max: int,
    pool_size: int,
    tls: Optional[Tls] = None,
    pool_ttl: float = 0.0,
) -> None:
    functions = doc.get(spec, "spec", "functions", _function_binding, required=True)
    url = doc.get(spec, "spec", "urlPathTemplate", _url_template, required=True)
    max_batch = doc.get(  # ≤ 0 disables the back-pressure
        spec, "spec", "maxNumBatchRequests", _int32, DEFAULT_MAX_NUM_BATCH_REQUESTS
    )
    if functions is None or url is None:
        return
    if is_unix_url(url) and transport != OKHTTP_TRANSPORT:
        doc.problem(
            "spec.urlPathTemplate",
            "unix socket URLs need transport io.statefun.transports.v1/okhttp",
        )
        return
    if any(existing.functions == functions for existing in module.endpoints):
        doc.problem("spec.functions", f"{functions!r} is already bound by another endpoint")
        return
    module.endpoints.append(
        Endpoint(
            functions=functions,
            url_path_template=url,
            max_num_batch_requests=max_batch,
            transport=transport,
            call_timeout=call,
            connect_timeout=connect,
            payload_max_bytes=payload_max,
            pool_size=pool_size,
            pool_ttl=pool_ttl,
            tls=tls,
            source=doc.where,
        )
    )


# a placeholder, or what was meant as one: from a brace to the next one or to the end
_PLACEHOLDER = re.compile(r"\{[^}]*\}?")

_STARTUP_POSITIONS = ("group-offsets", "earliest", "latest", "specific-offsets", "date")


def _parse_routes(
    doc: _Document, spec: dict[str, Any], key: str, name_key: str
) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    entries = doc.seen(spec, key)
    if not isinstance(entries, list) or not entries:
        doc.problem(f"spec.{key}", "is required and must be a non-empty list")
        return ()
    # by name: of a topic or stream listed twice, the last entry routes, as in the runtime
    routes: dict[str, tuple[str, str, tuple[str, ...]]] = {}
    for index, entry in enumerate(entries):
        path = f"spec.{key}[{index}]"
        if not isinstance(entry, dict):
            doc.problem(path, f"must be a mapping with {name_key}, valueType and targets")
            continue
        name = doc.get(entry, path, name_key, _string, required=True)
        value_type = doc.get(entry, path, "valueType", _typename, required=True)
        targets = doc.seen(entry, "targets")
        if not isinstance(targets, list) or not targets:
            doc.problem(f"{path}.targets", "is required and must be a non-empty list")
            continue
        checked = []
        for target_index, target in enumerate(targets):
            try:
                checked.append(_typename(target))
            except (TypeError, ValueError) as exc:
                doc.problem(f"{path}.targets[{target_index}]", str(exc))
        if name and value_type:
            routes.pop(name, None)
            routes[name] = (name, value_type, tuple(checked))
    return tuple(routes.values())


def _register_io(
    registry: dict[str, Any],
    item: Union[Ingress, Egress],
    doc: _Document,
    what: str,
    path: str = "spec.id",
) -> None:
    if item.id in registry:
        doc.problem(path, f"{what} {item.id!r} is defined twice")
    else:
        registry[item.id] = item


def _parse_kafka_ingress(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    ingress_id = doc.get(spec, "spec", "id", _typename, required=True)
    address = doc.get(spec, "spec", "address", _string, required=True)
    group = doc.get(spec, "spec", "consumerGroupId", _string, required=True)
    reset = doc.get(spec, "spec", "autoOffsetResetPosition", _one_of("earliest", "latest"),
                    default="latest")  # fmt: skip
    startup = doc.mapping(spec, "spec", "startupPosition")
    # latest, as the runtime's Kafka ingress has it (its docs say group-offsets)
    position = doc.get(startup, "spec.startupPosition", "type", _one_of(*_STARTUP_POSITIONS),
                       default="latest")  # fmt: skip
    offsets: tuple[tuple[str, int, int], ...] = ()
    date_ms = 0
    if position == "specific-offsets":
        entries = doc.seen(startup, "offsets", opaque=True)  # topic/partition: offset
        if not isinstance(entries, list):
            doc.problem("spec.startupPosition.offsets", "is required for specific-offsets")
        else:
            offsets = _specific_offsets(entries, doc)
    if position == "date":
        date_ms = doc.get(startup, "spec.startupPosition", "date", _startup_date, default=0,
                          required=True)  # fmt: skip
        # FlinkKafkaConsumer refuses both: the job fails (and Kafka would read -1 ms, -2 ms
        # as the end, the start of a partition)
        if date_ms > time.time() * 1000:
            doc.problem("spec.startupPosition.date", "is still to come: the runtime's Kafka "
                        "consumer starts only from a date before now")  # fmt: skip
        elif date_ms < 0:
            doc.problem("spec.startupPosition.date", "is before 1970: the runtime's Kafka "
                        "consumer starts only from 1970-01-01 00:00:00 Z on")  # fmt: skip
        _check_java_date(module, doc, startup)
    routes = _parse_routes(doc, spec, "topics", "topic")
    if ingress_id:
        kafka = StartupPosition(position, offsets, date_ms, reset)
        ingress = Ingress(ingress_id, KAFKA_INGRESS, routes, doc.where, address or "",
                          group or "", kafka, _properties(spec, doc))  # fmt: skip
        _register_io(module.ingresses, ingress, doc, "ingress")


def _specific_offsets(entries: list[Any], doc: _Document) -> tuple[tuple[str, int, int], ...]:
    """``- topic/partition: offset`` entries, as StateFun writes them."""
    found = []
    for index, entry in enumerate(entries):
        path = f"spec.startupPosition.offsets[{index}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            doc.problem(path, "must be one 'topic/partition: offset' entry")
            continue
        ((where, offset),) = entry.items()
        topic, slash, partition = str(where).rpartition("/")
        if not topic or not slash or not partition.isdigit() or not isinstance(offset, int):
            doc.problem(path, f"must be 'topic/partition: offset', got {entry!r}")
            continue
        found.append((topic, int(partition), offset))
    return tuple(found)


_DATE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))? *(Z|[+-]\d\d:?\d\d)"
)


#: the one form of a date the runtime parses (Java's ``yyyy-MM-dd HH:mm:ss.SSS Z``)
_JAVA_DATE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [+-]\d{4}")


def _check_java_date(module: Module, doc: _Document, startup: dict[str, Any]) -> None:
    """A warning for a date read here that the runtime refuses (its job fails on it): Java's
    pattern wants three digits of fraction and the zone as +HHMM, not Z nor +HH:MM."""
    date = startup.get("date")
    if date is not None and not _JAVA_DATE.fullmatch(str(date).strip()):
        module.warnings.append(
            f"{doc.where}: spec.startupPosition.date: {str(date)!r} is read here, but Apache "
            "StateFun refuses it (the job fails): it reads only 'yyyy-MM-dd HH:mm:ss.SSS Z', "
            "three digits of fraction and the zone as +HHMM, e.g. '2020-02-01 04:15:00.000 "
            "+0000'"
        )


def _startup_date(value: Any) -> int:
    """StateFun's ``yyyy-MM-dd HH:mm:ss.SSS Z`` (``2020-02-01 04:15:00.000 +0000``), in ms;
    also with a fraction of other than three digits or a zone as Z or +HH:MM, which the
    runtime refuses (see :func:`_check_java_date`)."""
    found = _DATE.fullmatch(str(value).strip())
    if not found:
        raise ValueError(f"must be a date like '2020-02-01 04:15:00.000 +0000', got {value!r}")
    *fields, fraction, zone = found.groups()
    offset = datetime.timedelta(0)
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    year, month, day, hour, minute, second = (int(field) for field in fields)
    microsecond = int((fraction or "0").ljust(6, "0"))
    moment = datetime.datetime(year, month, day, hour, minute, second, microsecond,
                               tzinfo=datetime.timezone(offset))  # fmt: skip
    return int(moment.timestamp() * 1000)


def _properties(
    spec: dict[str, Any], doc: _Document, key: str = "properties"
) -> tuple[tuple[str, str], ...]:
    """The client ``properties``: a list of single-entry mappings (or one mapping)."""
    raw = doc.seen(spec, key, opaque=True)
    if raw is None:
        return ()
    entries = [raw] if isinstance(raw, dict) else raw
    if not isinstance(entries, list):
        doc.problem(f"spec.{key}", "must be a list of 'key: value' entries")
        return ()
    found = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            doc.problem(f"spec.{key}[{index}]", "must be a 'key: value' entry")
            continue
        found += [(str(key), str(value)) for key, value in entry.items()]
    return tuple(found)


def _parse_kinesis_ingress(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    ingress_id = doc.get(spec, "spec", "id", _typename, required=True)
    startup = doc.mapping(spec, "spec", "startupPosition")
    position = doc.get(startup, "spec.startupPosition", "type",
                       _one_of("earliest", "latest", "date"), default="latest")  # fmt: skip
    date_ms = 0
    if position == "date":
        date_ms = doc.get(startup, "spec.startupPosition", "date", _startup_date, default=0,
                          required=True)  # fmt: skip
        _check_java_date(module, doc, startup)
    aws = _parse_aws(doc, spec)
    routes = _parse_routes(doc, spec, "streams", "stream")
    if ingress_id:
        properties = _properties(spec, doc, "clientConfigProperties")
        ingress = Ingress(ingress_id, KINESIS_INGRESS, routes, doc.where, aws.endpoint,
                          startup=StartupPosition(position, date_ms=date_ms),
                          properties=properties, aws=aws)  # fmt: skip
        _register_io(module.ingresses, ingress, doc, "ingress")


def _parse_aws(doc: _Document, spec: dict[str, Any]) -> Aws:
    region = doc.mapping(spec, "spec", "awsRegion")
    kind = doc.get(
        region, "spec.awsRegion", "type", _one_of("default", "specific", "custom-endpoint")
    )
    region_id = endpoint = ""
    if kind in ("specific", "custom-endpoint"):
        region_id = doc.get(region, "spec.awsRegion", "id", _string, default="", required=True)
    if kind == "custom-endpoint":
        endpoint = doc.get(region, "spec.awsRegion", "endpoint", _string, default="",
                           required=True)  # fmt: skip
    credentials = doc.mapping(spec, "spec", "awsCredentials")
    kind = doc.get(
        credentials, "spec.awsCredentials", "type", _one_of("default", "basic", "profile")
    )
    key = secret = profile = ""
    if kind == "basic":
        key = doc.get(credentials, "spec.awsCredentials", "accessKeyId", _string, default="",
                      required=True)  # fmt: skip
        secret = doc.get(credentials, "spec.awsCredentials", "secretAccessKey", _string,
                         default="", required=True)  # fmt: skip
    if kind == "profile":
        profile = doc.get(credentials, "spec.awsCredentials", "profileName", _string,
                          default="", required=True)  # fmt: skip
    return Aws(region_id, endpoint, key, secret, profile)


def _parse_kafka_egress(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    egress_id = doc.get(spec, "spec", "id", _typename, required=True)
    address = doc.get(spec, "spec", "address", _string, required=True)
    semantic = doc.mapping(spec, "spec", "deliverySemantic")
    semantics = _one_of("exactly-once", "at-least-once", "none")
    kind = doc.get(semantic, "spec.deliverySemantic", "type", semantics, default="at-least-once")
    timeout = 0.0
    if kind == "exactly-once":
        # the producer's transaction.timeout.ms, a Kafka int the broker wants more than 0; the
        # runtime reads the deprecated transactionTimeoutMillis (a number of ms) first
        deprecated = "transactionTimeoutMillis" in semantic
        key = "transactionTimeoutMillis" if deprecated else "transactionTimeout"
        timeout = doc.get(semantic, "spec.deliverySemantic", key,
                          _timeout("the runtime refuses it for exactly-once"), default=0.0,
                          required=True)  # fmt: skip
    if egress_id:
        egress = Egress(egress_id, KAFKA_EGRESS, doc.where, address or "", kind,
                        int(timeout * 1000), _properties(spec, doc))  # fmt: skip
        _register_io(module.egresses, egress, doc, "egress")


def _parse_kinesis_egress(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    egress_id = doc.get(spec, "spec", "id", _typename, required=True)
    aws = _parse_aws(doc, spec)
    doc.get(spec, "spec", "maxOutstandingRecords",
            _count("the runtime refuses a queue limit under 1"))  # fmt: skip
    if egress_id:
        properties = _properties(spec, doc, "clientConfigProperties")
        egress = Egress(egress_id, KINESIS_EGRESS, doc.where, aws.endpoint,
                        properties=properties, aws=aws)  # fmt: skip
        _register_io(module.egresses, egress, doc, "egress")


def _port(value: Any) -> int:
    number = _integer(value)
    if not 1 <= number <= 65535:
        raise ValueError(f"must be a TCP port from 1 to 65535, got {number}")
    return number


def _topics(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise TypeError(f"must be a list of topic names, got {value!r}")
    return tuple(_string(topic) for topic in value)


def _parse_playground_ingress(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    port = doc.get(spec, "spec", "port", _port, required=True)
    if port:
        ingress = Ingress(PLAYGROUND_INGRESS_ID, PLAYGROUND_INGRESS, source=doc.where, port=port)
        _register_io(module.ingresses, ingress, doc, "ingress", path="kind")


def _parse_playground_egress(module: Module, spec: dict[str, Any], doc: _Document) -> None:
    port = doc.get(spec, "spec", "port", _port, required=True)
    topics = doc.get(spec, "spec", "topics", _topics, required=True)
    if port and topics:
        egress = Egress(PLAYGROUND_EGRESS_ID, PLAYGROUND_EGRESS, doc.where, port=port,
                        topics=topics)  # fmt: skip
        _register_io(module.egresses, egress, doc, "egress", path="kind")


_PARSERS: dict[str, Callable[[Module, dict[str, Any], _Document], None]] = {
    ENDPOINTS_V1: _parse_endpoint_v1,
    ENDPOINTS_V2: _parse_endpoint_v2,
    KAFKA_INGRESS: _parse_kafka_ingress,
    KAFKA_EGRESS: _parse_kafka_egress,
    KINESIS_INGRESS: _parse_kinesis_ingress,
    KINESIS_EGRESS: _parse_kinesis_egress,
    PLAYGROUND_INGRESS: _parse_playground_ingress,
    PLAYGROUND_EGRESS: _parse_playground_egress,
}
