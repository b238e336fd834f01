"""``statefun-local``: run a module, send messages, look at state, follow the egress.

    statefun-local run module.yaml [--db statefun-local.db] [--port 8090]
    statefun-local send com.example.fns/greeter/Ann --string Ann
    statefun-local state com.example.fns/greeter/Ann
    statefun-local state com.example.fns/greeter/Ann --set seen_count=99 --delete last_seen
    statefun-local egress --follow
    statefun-local stuck                      # addresses whose head message keeps failing
    statefun-local skip com.example.fns/greeter/Ann     # or retry, dead-letter (pending while
                                                        # the address is being called)
    statefun-local audit

``state``, ``egress``, ``stuck`` and ``audit`` read the database file directly, so they work
whether or not the runtime is running; ``retry``, ``skip`` and ``dead-letter`` ask the running
runtime; ``state --set`` and ``--delete`` ask the runtime running on the database, else write
it themselves. Every command with ``--db`` takes the environment variable ``STATEFUN_LOCAL_DB``
as its default (``--db`` wins), so that ``export STATEFUN_LOCAL_DB=other.db`` points ``run`` and
the commands that read the database at the same file; likewise ``STATEFUN_LOCAL_URL`` is the
``--url`` of the commands that ask the runtime (``send``, ``retry``, ``skip``, ``dead-letter``,
``state --set``), for a runtime ``run`` elsewhere than on ``--port 8090``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Optional, Union

from statefun_core.engine import Address

from .guard import json_line, one_line
from .inspection import SHOWN, address_view, egress_view, parse_address
from .module import ModuleError, load_module
from .runtime import (
    LocalRuntime,
    WallClock,
    describe_module,
    runtime_runs_on,
    unless_runtime_runs,
)
from .store import SqliteStore
from .stuck import DeadLetterPolicy

DEFAULT_DB = "statefun-local.db"
#: The environment variable naming the database of every command with ``--db``.
DB_VARIABLE = "STATEFUN_LOCAL_DB"
DEFAULT_PORT = 8090
#: The environment variable naming the runtime of every command with ``--url``.
URL_VARIABLE = "STATEFUN_LOCAL_URL"
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"


def main(argv: Optional[list[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        code = int(args.command(args) or 0)
        sys.stdout.flush()  # here, where a reader gone away is seen
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # what reads the output went away (| head): nothing more to say
        with contextlib.suppress(OSError, ValueError):  # and no failed flush at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ModuleError, OSError, ValueError, RuntimeError, sqlite3.Error) as error:
        print(f"statefun-local: {error}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statefun-local",
        description="A local, durable Stateful Functions runtime.",
        epilog=f"{DB_VARIABLE}: the database of every command with --db when --db is not "
        f"given (default {DEFAULT_DB}); {URL_VARIABLE}: likewise the runtime of every "
        f"command with --url (default {DEFAULT_URL})",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    run = _command(commands, "run", "run the functions of one or more module.yaml files")
    run.add_argument("module", nargs="+", help="module.yaml file(s)")
    _db_argument(run)
    run.add_argument(
        "--host",
        default="127.0.0.1",
        help="address of the web page and ingress (default 127.0.0.1)",
    )
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    run.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a name the page and ingress may be reached by besides localhost and "
        "IP addresses (e.g. a container's service name); repeatable",
    )
    run.add_argument("--egress-jsonl", metavar="FILE", help="also append egress records here")
    run.add_argument(
        "--synchronous",
        choices=["NORMAL", "FULL"],
        default="NORMAL",
        help="NORMAL survives a process crash; FULL also a power loss (slower)",
    )
    run.add_argument("-v", "--verbose", action="store_true",
                     help="log every failed attempt of a call (by default the 1st and every "
                          "10th)")  # fmt: skip
    run.add_argument("--offline", action="store_true",
                     help="connect to no Kafka broker or Kinesis endpoint: records come in "
                          "over HTTP only, and egress records are only stored")  # fmt: skip
    dead = run.add_argument_group("dead letters (beyond the Flink runtime)")
    dead.add_argument("--dead-letter-after", type=int, metavar="N",
                      help="move a head message to the dead-letter egress after N failed "
                           "attempts (default: only by hand)")  # fmt: skip
    dead.add_argument("--dead-letter-egress", metavar="NS/NAME",
                      help="an egress of the module (default: statefun-local/dead-letters, "
                           "stored only)")  # fmt: skip
    dead.add_argument("--dead-letter-topic", metavar="TOPIC", help="its topic, for Kafka")
    dead.add_argument("--dead-letter-stream", metavar="STREAM", help="its stream, for Kinesis")
    dead.add_argument("--dead-letter-config", metavar="FILE",
                      help="a YAML policy: egress, topic or stream, after, and per "
                           "function type 'functions: {ns/name: N}'; flags win")  # fmt: skip
    run.set_defaults(command=_run)

    send = _command(commands, "send", "send a message to namespace/type/id")
    send.add_argument("address", help="namespace/type/id")
    value = send.add_mutually_exclusive_group(required=True)
    for name in ("string", "int", "long", "bool", "float", "double"):
        value.add_argument(f"--{name}", metavar="VALUE", help=f"an io.statefun.types/{name}")
    value.add_argument("--json", metavar="JSON", help="a JSON value (with --type ns/name)")
    value.add_argument("--bytes-file", metavar="FILE", help="raw bytes (with --type ns/name)")
    send.add_argument(
        "--type", dest="typename", metavar="NS/NAME", help="the typename for --json or --bytes-file"
    )
    _url_argument(send)
    send.set_defaults(command=_send)

    state = _command(commands, "state", "an address's state, mailbox and timers")
    state.add_argument("address", help="namespace/type/id")
    _db_argument(state)
    state.add_argument("--limit", type=_positive, default=SHOWN, metavar="N",
                       help=f"show the first N messages and delayed messages (default {SHOWN}; "
                            "all are counted)")  # fmt: skip
    edit = state.add_argument_group(
        "editing (beyond the Flink runtime)",
        "each value as JSON, encoded by the type its function declared for the state: 99 for "
        'an int, \'"Ann"\' for a string, \'{"json": ...}\' or \'{"base64": "..."}\' for '
        "another type, as shown; written with an entry in the audit log, by the runtime "
        "running on --db (at --url), else into --db directly",
    )
    edit.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                      help="set the state NAME; repeatable")  # fmt: skip
    edit.add_argument("--delete", action="append", default=[], metavar="NAME",
                      help="delete the state NAME; repeatable")  # fmt: skip
    _url_argument(state)
    state.set_defaults(command=_state)

    egress = _command(commands, "egress", "print egress records")
    _db_argument(egress)
    egress.add_argument("--follow", "-f", action="store_true", help="keep printing new ones")
    egress.add_argument("--after", type=int, default=0, help="only records after this number")
    egress.add_argument("--json", action="store_true", help="one JSON object per line")
    egress.set_defaults(command=_egress)

    listed = _command(commands, "stuck", "addresses whose head message keeps failing")
    _db_argument(listed)
    listed.add_argument("--json", action="store_true", help="one JSON object per line")
    listed.add_argument("--limit", type=_positive, default=10_000, metavar="N",
                        help="show the N oldest failures (default 10000)")  # fmt: skip
    listed.set_defaults(command=_stuck)
    audit = _command(commands, "audit", "what was done to stuck addresses and their state by hand")
    _db_argument(audit)
    audit.add_argument("--json", action="store_true", help="one JSON object per line")
    audit.add_argument("--limit", type=_positive, default=10_000, metavar="N",
                       help="show the latest N entries (default 10000)")  # fmt: skip
    audit.set_defaults(command=_audit)
    for action, text in (
        ("retry", "retry the head message of a stuck address now"),
        (
            "skip",
            "drop the head message of a stuck address (while it is "
            "being called: once that call has failed)",
        ),
        (
            "dead-letter",
            "move the head message of a stuck address to the "
            "dead-letter egress (while it is being called: once "
            "that call has failed)",
        ),
    ):
        act = _command(commands, action, text)
        act.add_argument("address", help="namespace/type/id")
        act.add_argument("--message", type=int, metavar="N",
                         help="only if the head message is still #N, as 'stuck' listed it "
                              "(else nothing is done)")  # fmt: skip
        _url_argument(act)
        act.set_defaults(command=_act, action=action)
    return parser


def _command(commands: Any, name: str, text: str) -> argparse.ArgumentParser:
    """A command, saying what it does in the list of commands and in its own ``--help``."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=text, description=text)
    return parser


def _db_argument(parser: argparse.ArgumentParser) -> None:
    """``--db``, its default the environment's ``STATEFUN_LOCAL_DB``, else ``DEFAULT_DB``."""
    parser.add_argument(
        "--db",
        default=os.environ.get(DB_VARIABLE) or DEFAULT_DB,
        help=f"the SQLite database (default: ${DB_VARIABLE} if set, else {DEFAULT_DB})",
    )


def _url_argument(parser: argparse.ArgumentParser) -> None:
    """``--url``, its default the environment's ``STATEFUN_LOCAL_URL``, else ``DEFAULT_URL``."""
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_VARIABLE) or DEFAULT_URL,
        help=f"the running runtime (default: ${URL_VARIABLE} if set, else {DEFAULT_URL})",
    )


# --- run -------------------------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(  # dated: a runtime runs for days
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
    )
    if args.verbose:  # the failed attempts of a call between the 1st and every 10th
        logging.getLogger("statefun_local").setLevel(logging.DEBUG)
    module = load_module(*args.module)
    runtime = LocalRuntime(
        module,
        args.db,
        synchronous=args.synchronous,
        egress_jsonl=args.egress_jsonl,
        module_name=", ".join(args.module),
        offline=args.offline,
        dead_letters=_dead_letter_policy(args),
    )
    asyncio.run(_serve(runtime, args.host, args.port, args.module, args.allow_host))
    return 0


async def _serve(
    runtime: LocalRuntime, host: str, port: int, modules: list[str], allowed_hosts: list[str]
) -> None:
    from aiohttp import web

    from .module import PLAYGROUND_EGRESS_ID, PLAYGROUND_INGRESS_ID
    from .server import MAX_REQUEST_LINE, make_apps

    await runtime.start()
    # on stop, requests still running get half a second (a long poll ends at once)
    runners = [
        (
            app_port,
            web.AppRunner(
                app, access_log=None, shutdown_timeout=0.5, max_line_size=MAX_REQUEST_LINE
            ),
        )
        for app_port, app in make_apps(runtime, port, allowed_hosts=allowed_hosts).items()
    ]
    try:
        for app_port, runner in runners:
            await runner.setup()
            try:
                await web.TCPSite(runner, host, app_port).start()
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                who = _port_user(app_port, port)
                raise OSError(f"port {app_port} of {host} is in use ({who})") from None
        print(f"statefun-local: running {', '.join(modules)} (database {runtime.db})", flush=True)
        for line in describe_module(runtime.module, kafka=not runtime.offline):
            print(line)
        port = runners[0][1].addresses[0][1]  # the one the system chose for --port 0
        ingress = runtime.module.ingresses.get(PLAYGROUND_INGRESS_ID)
        if ingress is not None:
            print(f"  playground ingress: PUT http://{host}:{ingress.port}/<namespace>/<type>/<id>")
        egress = runtime.module.egresses.get(PLAYGROUND_EGRESS_ID)
        if egress is not None:
            for topic in egress.topics:
                print(f"  playground egress: GET http://{host}:{egress.port}/{topic}")
        print(f"  web page and ingress on http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # Windows: Ctrl+C still works
                loop.add_signal_handler(sig, stop.set)
        progress = asyncio.create_task(_report_progress(runtime))
        await stop.wait()
        progress.cancel()
        print("statefun-local: stopping (batches in flight are sent again on the next run)")
    finally:
        for _, runner in runners:
            await runner.cleanup()
        await runtime.stop()


def _port_user(port: int, own_port: int) -> str:
    """Who wants ``port``, for the error when it is in use."""
    if port == own_port:
        return "another statefun-local? give --port"
    return "the module's playground ingress or egress wants it; is another runtime running?"


async def _report_progress(runtime: LocalRuntime, every: float = 10.0) -> None:
    """Log a line of counts every ``every`` seconds while messages are moving."""
    log = logging.getLogger("statefun_local")
    reported = runtime.delivered
    while True:
        await asyncio.sleep(every)
        if runtime.delivered == reported:
            continue
        status = runtime.status(top=0, egress=0)
        totals = status["totals"]
        log.info(
            "%d messages delivered (%.0f/s); %d queued, %d in flight, %d timers, %d egress records",
            totals["delivered"],
            runtime.messages_per_second(),
            totals["queued"],
            totals["in_flight"],
            totals["timers"],
            totals["egress"],
        )
        for c in status["connections"]:
            done = f"lag {c['lag']}" if c["kind"] == "ingress" else f"at {c['position']}"
            log.info(
                "kafka %s %s (%s): %s, %d records, %s",
                c["kind"],
                c["id"],
                c["broker"],
                c["state"],
                c["records"],
                done,
            )
        reported = runtime.delivered


def _dead_letter_policy(args: argparse.Namespace) -> DeadLetterPolicy:
    policy = (DeadLetterPolicy.load(args.dead_letter_config) if args.dead_letter_config
              else DeadLetterPolicy())  # fmt: skip
    egress = policy.egress
    if args.dead_letter_egress or args.dead_letter_topic or args.dead_letter_stream:
        from statefun_core import DeadLetterEgress

        egress = DeadLetterEgress(
            args.dead_letter_egress or egress.typename,
            args.dead_letter_topic,
            args.dead_letter_stream,
        )
    after = policy.after if args.dead_letter_after is None else args.dead_letter_after
    return DeadLetterPolicy(egress, after, policy.by_type)


# --- send ------------------------------------------------------------------------------------


def _send(args: argparse.Namespace) -> int:
    body: Union[dict[str, Any], bytes]
    if not parse_address(args.address).id:
        raise ValueError(
            f"{args.address!r} has an empty id: a message is sent to an id "
            "(only a Kafka record's empty key makes an empty one)"
        )
    path = f"ingress/{_address_path(args.address)}"
    for name in ("string", "int", "long", "bool", "float", "double"):
        if getattr(args, name) is not None:
            body = {"type": name, "value": getattr(args, name)}
            break
    else:
        if not args.typename:
            raise ValueError("--json and --bytes-file need --type namespace/name")
        if args.json is not None:
            try:
                body = {"type": args.typename, "value": json.loads(args.json)}
            except ValueError as error:
                raise ValueError(f"--json is not JSON: {error}") from None
        else:  # as they are: base64 in JSON would take a third of the body's room
            body = Path(args.bytes_file).read_bytes()
            path += f"?typename={urllib.parse.quote(args.typename, safe='/')}"
    reply = _post(args.url, path, body)
    if reply is None:
        return 1
    _print(f"sent {reply['type']} to {reply['target']} (message #{reply['seq']})")
    return 0


# --- state and egress ------------------------------------------------------------------------


def _print(line: str) -> None:
    """A line of the human-readable output, its control characters escaped: an id, a value or
    an error text may hold any (a terminal's escape sequences, a line break that forges a
    line)."""
    print(one_line(line))


def _open_readonly(db: str) -> SqliteStore:
    _check_exists(db)
    return SqliteStore.open(db, readonly=True)


def _check_exists(db: str) -> None:
    if not Path(db).exists():
        raise FileNotFoundError(
            f"no database at {db} (give --db or set {DB_VARIABLE}, or run the runtime first)"
        )


#: what one_line writes for a character it escapes (a control or bidi character of an id)
_SHOWN_AS_ESCAPE = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4})")


def _hint_if_escaped(text: str) -> None:
    """An address as ``stuck`` or ``state`` showed it, copied with its escapes (``\\x1b``):
    say that they stand for characters, which must be given as they are."""
    if _SHOWN_AS_ESCAPE.search(text):
        print(
            f"statefun-local: {one_line(text)} holds escapes as an address is shown "
            "(\\x1b, \\u202e), which stand for characters that can not be shown: give those "
            "characters (in bash, $'ns/type/a\\x1bb'); an id with a NUL only through the HTTP "
            "API, percent-encoded (/api/state/<ns>/<type>?id=a%00b)",
            file=sys.stderr,
        )


def _state(args: argparse.Namespace) -> int:
    address = parse_address(args.address)
    if (args.set or args.delete) and not _edit_state(args, address):
        return 1
    with contextlib.closing(_open_readonly(args.db)) as store:
        view = address_view(store, address, WallClock().now_ms(), args.limit)
    if not view["state"] and not any(view["totals"].values()):
        _hint_if_escaped(args.address)
    _print(view["address"])
    without_value = view["without_value"] or {}
    if not view["state"] and not without_value:
        print("  state: (none)")
    lines = {}
    for name, entry in view["state"].items():
        notes = [
            note
            for note, flag in (
                ("expired", entry["expired"]),
                ("no longer declared", entry["declared"] is False),
                (
                    "its function has not answered since the runtime started",
                    entry["declared"] is None,
                ),
            )
            if flag
        ]
        suffix = f"  ({', '.join(notes)})" if notes else ""
        lines[name] = f"  state {name}: {_show(entry['value'])}  [{entry['type']}]{suffix}"
    # a state its function declares with no value here (--set sets one), among them by name
    for name, spec in without_value.items():
        lines[name] = f"  state {name}: (no value)  [{spec['type']}]"
    for name in sorted(lines):
        _print(lines[name])
    totals = view["totals"]
    for label in ("in_flight", "queued"):
        messages = view[label]
        print(f"  {label.replace('_', ' ')}: {totals[label]} message(s)")
        for message in messages:
            caller = f" from {message['caller']}" if message["caller"] else ""
            _print(f"    #{message['seq']}{caller}: {_show(message['value'])}  [{message['type']}]")
        _more(totals[label] - len(messages))
    print(f"  timers: {totals['timers']}")
    for timer in view["timers"]:
        token = f", token {timer['cancellation_token']!r}" if timer["cancellation_token"] else ""
        _print(
            f"    due in {timer['due_in_ms']} ms from {timer['caller']}{token}: "
            f"{_show(timer['value'])}  [{timer['type']}]"
        )
    _more(totals["timers"] - len(view["timers"]))
    return 0


def _edit_state(args: argparse.Namespace, address: Address) -> bool:
    """Set and delete states as ``--set`` and ``--delete`` say: by the runtime running on the
    database, else in the database itself, none starting meanwhile. False (the reason
    printed) when not done."""
    from . import editing, stuck

    values = {}
    for pair in args.set:
        name, equals, text = pair.partition("=")
        if not equals or not name:
            raise ValueError(f"--set {pair!r}: give NAME=JSON, as count=99")
        if name in values:
            raise ValueError(f"--set {name} is given twice: which value is meant?")
        try:
            values[name] = json.loads(text)
        except ValueError as error:
            raise ValueError(
                f"--set {name}: {text!r} is not JSON ({error}); a string is quoted: "
                f"{name}='\"text\"'"
            ) from None
    _check_exists(args.db)
    with unless_runtime_runs(args.db) as free:
        if free:
            with contextlib.closing(SqliteStore.open(args.db)) as store:
                stuck.ensure_schema(store.conn)  # the audit log of a database no runtime made
                try:
                    edit = editing.encode(store, address, values, args.delete)
                except editing.StateEditError as error:  # as the runtime's refusal is said
                    print(f"statefun-local: {one_line(str(error))}", file=sys.stderr)
                    return False
                detail = editing.apply(store, edit, "cli", WallClock().now_ms())
            _print(f"{address}: edited ({detail})")
            return True
    body = {"set": values, "delete": args.delete}
    reply = _post_for(args.url, "api/state", address, {"db": os.path.abspath(args.db)}, body)
    if reply is None:
        _hint_if_escaped(args.address)
        return False
    _print(f"{reply['address']}: edited by the runtime ({reply['detail']})")
    return True


def _more(hidden: int) -> None:
    if hidden:
        print(f"    ... and {hidden} more (--limit N shows more)")


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:  # argparse's own words for a ValueError would name this function
        raise argparse.ArgumentTypeError(f"must be a whole number, 1 or more, not {text!r}")
    return number


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json_line(value)


def _egress(args: argparse.Namespace) -> int:
    after = args.after
    with contextlib.closing(_open_readonly(args.db)) as store:
        while True:
            records = store.egress_list(after, limit=1000)
            for record in records:
                view = egress_view(record)
                after = record.seq
                if args.json:
                    print(json_line(view))
                else:
                    _print(f"#{view['seq']} {view['egress']}: {_show_record(view['record'])}")
            sys.stdout.flush()  # followed: each batch as it comes
            if not records and not args.follow:
                return 0
            if not records:
                time.sleep(0.2)


# --- stuck addresses -------------------------------------------------------------------------


def _stuck(args: argparse.Namespace) -> int:
    from . import stuck

    running = runtime_runs_on(args.db)  # before the connection: see runtime_runs_on
    with contextlib.closing(_open_readonly(args.db)) as store:
        entries = stuck.listing(store, args.limit)
        newer = stuck.count(store) - len(entries)
    if not args.json and not entries:
        print("no stuck addresses")
    elif not args.json and not running:
        _print(f"no runtime is running on {args.db}: nothing is retried until one starts")
    for entry in entries:
        # a runtime killed (-9) during a call left its failed attempts: no call is in progress
        stopped_call = 0 if running else entry["call_attempts"]
        if not running:
            entry["call_attempts"] = 0
        if args.json:
            print(json_line(entry))
            continue
        caller = f" from {entry['caller']}" if entry["caller"] else ""
        if entry["call_attempts"]:
            retry = f"being retried now ({entry['call_attempts']} failed within this call)"
        elif stopped_call:
            retry = (
                f"its call was being retried when the runtime stopped ({stopped_call} "
                f"failed within it, the last at {entry['last_failed']})"
            )
        else:
            retry = f"next retry {entry['next_retry']}"
        _print(
            f"{entry['address']}: message #{entry['message_seq']} [{entry['message_type']}]"
            f"{caller}, {entry['attempts']} attempt(s), {retry}"
        )
        _print(f"  last error: {entry['last_error']}")
        pending = entry.get("pending")
        if pending:
            _print(f"  pending: {pending['action']} by {pending['by']} at {pending['time']}, "
                   "done if the call in progress fails")  # fmt: skip
    if not args.json and newer > 0:
        print(f"... and {newer} more after these (--limit N shows more)")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from . import stuck

    with contextlib.closing(_open_readonly(args.db)) as store:
        entries = stuck.audit_listing(store.conn, limit=args.limit)
        older = stuck.audit_size(store.conn) - len(entries)
    if not args.json and not entries:
        print("the audit log is empty: nothing was done to a stuck address or its state")
    if not args.json and older:
        print(f"... {older} older entries before these (--limit N shows more)")
    for entry in reversed(entries):
        if args.json:
            print(json_line(entry))
            continue
        detail = f" ({entry['detail']})" if entry["detail"] else ""
        seq = entry["message_seq"]  # none for a state edit
        message = "" if seq is None else f" message #{seq}"
        where = f"{entry['address']}{message}"
        _print(f"{entry['time']} {entry['action']} {where} by {entry['by']}{detail}")
    return 0


def _post(url: str, path: str, body: Any) -> Optional[Any]:
    """POST ``body`` as JSON, or bytes as they are (as the runtime asks of every POST: a form
    type is what another site could send), and return the JSON reply; None, with the reason
    printed, on a failure."""
    raw = isinstance(body, bytes)
    request = urllib.request.Request(
        f"{url.rstrip('/')}/{path}",
        data=body if raw else json.dumps(body).encode(),
        headers={"Content-Type": "application/octet-stream" if raw else "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        print(
            f"statefun-local: {one_line(error.read().decode(errors='replace').strip())}",
            file=sys.stderr,
        )
    except urllib.error.URLError as error:
        print(
            f"statefun-local: can not reach the runtime at {url}: {error.reason} (is it "
            f"running? give --url or set {URL_VARIABLE} for another port)",
            file=sys.stderr,
        )
    return None


def _post_for(
    url: str, route: str, address: Address, params: dict[str, str], body: Any
) -> Optional[Any]:
    """``_post`` to ``route`` for ``address``, by the CLI: its typename in the path, each part
    percent-encoded, and its id in the query (an empty id has no path)."""
    typename = "/".join(urllib.parse.quote(part, safe="") for part in address.typename.split("/"))
    query = urllib.parse.urlencode({"id": address.id, "by": "cli", **params})
    return _post(url, f"{route}/{typename}?{query}", body)


def _address_path(text: str) -> str:
    """``ns/type/id`` as a URL path, each part percent-encoded (an id may hold anything)."""
    address = parse_address(text)
    namespace, function_name = address.typename.rsplit("/", 1)
    parts = (namespace, function_name, address.id)
    return "/".join(urllib.parse.quote(part, safe="") for part in parts)


def _act(args: argparse.Namespace) -> int:
    address = parse_address(args.address)
    params = {} if args.message is None else {"message": str(args.message)}
    reply = _post_for(args.url, f"api/stuck/{args.action}", address, params, {})
    if reply is None:
        _hint_if_escaped(args.address)
        return 1
    if reply["done"] == "pending":
        _print(f"{reply['address']}: {args.action} pending: {reply['detail']}")
    else:
        detail = f" ({reply['detail']})" if reply.get("detail") else ""
        _print(f"{reply['address']}: {reply['done']}{detail}")
    return 0


def _show_record(record: Any) -> str:
    if isinstance(record, dict) and "kafka" in record:
        kafka = record["kafka"]
        # the headers (a name may repeat, a value be null) before the value, which may hold
        # anything: as JSON pairs
        headers = kafka.get("headers")
        shown = f" headers={_show(headers)}" if headers else ""
        return f"topic={kafka['topic']} key={kafka['key']}{shown} value={_show(kafka['value'])}"
    if isinstance(record, dict) and "kinesis" in record:
        kinesis = record["kinesis"]
        return (
            f"stream={kinesis['stream']} partition_key={kinesis['partition_key']} "
            f"value={_show(kinesis['value'])}"
        )
    return _show(record)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
