"""The ``yingji`` command: run the platform, one service, or operate dead-letter queues.

Each subcommand is one ``_add_<name>`` function that declares its options and points at its
``cmd_<name>``; ``SUBCOMMANDS`` lists them in the order ``yingji --help`` shows them.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from libs.common import bus
from libs.common.app import Runtime
from libs.common.county import County
from libs.common.logging import configure_logging
from libs.common.settings import Settings
from libs.common.sqlite import DamagedStoreError
from yingji.platform import SERVICE_MODULES, SERVICE_NAMES, build, load_specs

# What each YINGJI_* variable does, for `yingji --help`; the list itself comes from Settings.
SETTING_HELP = {
    "data_dir": "SQLite files of the services and keys, bootstrap key and cursor secret",
    "bus_url": "memory:// (embedded) or amqp://user:pass@host:5672/vhost",
    "mongo_url": "mongodb:// URL: every service on MongoDB; empty: SQLite files in the data dir",
    "database_prefix": "prefix of the MongoDB database names",
    "host": "address to listen on",
    "port": "port to listen on",
    "public_url": "where the public reaches the API (feed links); empty: the listening address",
    "log_format": "auto, json or console (`yingji up` uses console unless set)",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "bootstrap_admin_key": "the first admin key; empty: generated once into the data directory",
    "county_file": "county YAML (townships, teams, stock); empty: the demo county",
    "deadline_profile": "reporting deadline profile (it sets the county's local time zone too)",
    "max_body_bytes": "largest request body accepted",
    "relay_interval_seconds": "how often the outbox relay looks for unsent events",
    "relay_idle_seconds": "how seldom an idle relay looks (writes wake it at once)",
    "relay_batch_size": "events the relay publishes per round",
    "outbox_lease_seconds": "how long a relay holds an outbox row before another may take it",
    "consumer_prefetch": "unacknowledged messages a consumer holds",
    "handler_retries": "retries of a failing event handler before it is dead-lettered",
    "handler_backoff_seconds": "waits between those retries (JSON list)",
    "queue_delivery_limit": "deliveries of a message before RabbitMQ dead-letters it",
    "timer_interval_seconds": "how often deadline and expiry jobs run",
    "auth_failure_limit": "failed authentications per address and key id in the window",
    "auth_failure_window_seconds": "that window",
    "rate_limit_per_second": "requests per second per key or address; 0 switches it off",
    "rate_limit_burst": "requests a client may send at once above that rate; 0 switches it off",
    "forwarded_allow_ips": "proxies whose X-Forwarded-* headers are believed",
    "cursor_secret": "HMAC key of page cursors; empty: generated once into the data directory",
    "openapi_peers": "other services' base URLs whose API documents /openapi.json merges "
    "(the process behind the proxy's /docs); empty: its own only",
    "min_free_disk_bytes": "readiness fails below this much free space (bytes) where the data "
    "directory is; 0 switches the check off",
}


class CliError(Exception):
    """A failure the user can act on: printed as one line, exit status 1."""


def fail(message: str) -> NoReturn:
    """Stop the command with a one-line message."""
    raise CliError(message)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's layout and appends ``(default: X)`` where an option has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, argparse.SUPPRESS, False):
            return text
        if action.option_strings:
            return f"{text} (default: %(default)s)"
        return text


# The services' own settings classes (``module:Class``), listed after the platform's.
SERVICE_SETTINGS = (
    "services.intake.config:IntakeSettings",
    "services.reporting.duty.config:DutySettings",
)
# Variables a service reads by name rather than through a settings class: (help, default).
FILE_VARIABLES = {
    "YINGJI_WARNING_RULES_FILE": ("the warning rule table (YAML)", "services/warning/rules.yaml"),
    "YINGJI_DISPATCH_RULES_FILE": (
        "the dispatch rule table (YAML)",
        "services/dispatch/rules.yaml",
    ),
    "YINGJI_DISPATCH_CAPABILITIES_FILE": (
        "what each kind of team and stock can do (YAML)",
        "services/dispatch/capabilities.yaml",
    ),
}
# The duty office's settings say what they are for in comments, not descriptions.
SERVICE_SETTING_HELP = {
    "YINGJI_UPSTREAM_URL": "the city's platform the duty office reports up to (上报市); empty: off",
    "YINGJI_UPSTREAM_TOKEN": "the token every push to the city's platform carries",
    "YINGJI_UPSTREAM_TIMEOUT_SECONDS": "how long a push to the city's platform may take",
    "YINGJI_UPSTREAM_DEADLINE_PROFILE": "the deadline profile that judges 迟报 upward",
    "YINGJI_UPSTREAM_LEASE_SECONDS": "how long one process holds a push while it tries it",
}


def _shown_default(default: Any) -> Any:
    if default in ("", None):
        return "(empty)"
    if isinstance(default, Path):
        root = Path(__file__).resolve().parents[1]
        if default.is_relative_to(root):
            return default.relative_to(root)
        if not default.is_absolute():
            return f"./{default}"
    return default


def _settings_lines(settings_class: type[BaseSettings], notes: dict[str, str]) -> list[str]:
    prefix = str(settings_class.model_config.get("env_prefix", "")).upper()
    lines = []
    for name, field in settings_class.model_fields.items():
        default = _shown_default(field.get_default(call_default_factory=True))
        variable = f"{prefix}{name.upper()}"
        text = notes.get(name) or notes.get(variable) or field.description or ""
        lines.append(f"  {variable:<39} {text} (default: {default})")
    return lines


def service_settings_classes() -> list[type[BaseSettings]]:
    """The services' own settings classes, whose fields are ``YINGJI_*`` variables too."""
    import importlib

    classes = []
    for path in SERVICE_SETTINGS:
        module, name = path.split(":")
        classes.append(getattr(importlib.import_module(module), name))
    return classes


def environment_help() -> str:
    """Every ``YINGJI_*`` variable with its default: the platform's Settings, the services'
    settings classes and the rule files the services read by name."""
    lines = ["environment (each setting can be given as a variable):"]
    lines += _settings_lines(Settings, SETTING_HELP)
    for settings_class in service_settings_classes():
        lines += _settings_lines(settings_class, SERVICE_SETTING_HELP)
    for variable, (text, default) in FILE_VARIABLES.items():
        lines.append(f"  {variable:<39} {text} (default: {default})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ up and run


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment, with the command line's options on top; the services'
    own settings are checked too, so a bad one stops the command before anything is made."""
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    check_service_settings()
    return settings


def check_service_settings() -> None:
    """Read the services' settings classes once (a ValidationError names the variable) and
    refuse a deadline profile (``…_DEADLINE_PROFILE``) that the profiles file does not have."""
    from libs.common.profiles import load_profiles

    known = load_profiles()
    for settings_class in service_settings_classes():
        prefix = str(settings_class.model_config.get("env_prefix", "")).upper()
        values = settings_class()
        for name in settings_class.model_fields:
            value = getattr(values, name)
            if name.endswith("deadline_profile") and value not in known:
                fail(
                    f"{prefix}{name.upper()}={value!r} is not a deadline profile; "
                    f"known: {', '.join(known)}"
                )


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an OS lock on the data directory for this process's lifetime (one process per
    embedded store); the OS releases it however the process ends."""
    from yingji.backup import BackupError, hold_data_dir

    try:
        return hold_data_dir(data_dir)
    except BackupError as exc:
        fail(str(exc))


def check_port(port: int | None) -> None:
    """Refuse a port number TCP does not have (the socket layer would wrap or reject it)."""
    if port is not None and not 1 <= port <= 65535:
        fail(f"--port {port}: a port is a number from 1 to 65535")


def validation_problems(exc: ValidationError) -> str:
    """Validation errors of a file's content as ``field.path: reason``, one after another."""
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(the whole file)'}: {error['msg']}"
        for error in exc.errors()
    )


def load_county_file(path: Path | None) -> County:
    """The county of ``YINGJI_COUNTY_FILE`` (the demo county when unset), read before anything
    starts; a missing, unreadable or invalid file is one line naming the file and the field."""
    import yaml

    from libs.common.county import load_county

    try:
        return load_county(path)
    except OSError as exc:
        fail(f"cannot read the county file {path} (YINGJI_COUNTY_FILE): {exc.strerror or exc}")
    except yaml.YAMLError as exc:
        fail(f"the county file {path} is not valid YAML: {' '.join(str(exc).split())}")
    except ValidationError as exc:
        fail(f"the county file {path} is not valid: {validation_problems(exc)}")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, bound before anything starts."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        fail(f"cannot listen on {host}: {exc.strerror}")
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"port {port} on {host} is already in use (another yingji?); "
                "choose another with --port or YINGJI_PORT"
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    sock.listen(2048)
    return sock


def banner(settings: Settings, key: str | None, services: Sequence[str]) -> str:
    """What a person needs after start-up: the addresses, the data directory, the first key."""
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    base = f"http://{host}:{settings.port}"
    lines = [
        "",
        f"Yingji 应急 is running ({', '.join(services)})",
        f"  API      {base}/v1/",
        f"  Docs     {base}/docs",
        f"  Console  {base}/console",
        f"  Metrics  {base}/metrics",
        f"  Ready    {base}/readyz",
        f"  Data     {settings.data_dir.resolve()}",
    ]
    if key:
        lines += [
            "",
            "  Bootstrap admin key (shown once; also saved with mode 600 in the data directory):",
            f"  {key}",
        ]
    return "\n".join(lines) + "\n"


class _Server(uvicorn.Server):
    """uvicorn's server, calling ``on_started`` once the app has started and is listening."""

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None]) -> None:
        super().__init__(config)
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            self.on_started()


def _start(
    settings: Settings, services: Sequence[str], *, one_per_data_dir: bool
) -> tuple[socket.socket, IO[str] | None, FastAPI, Runtime]:
    """The listening socket, the data directory's lock and the assembled app, taken in the
    order that makes a failure leave nothing behind (a directory it created goes again)."""
    from yingji.backup import release_data_dir

    county = load_county_file(settings.county_file)
    listener = bind(settings.host, settings.port)
    created = not settings.data_dir.exists()
    try:
        lock = lock_data_dir(settings.data_dir) if one_per_data_dir else None
    except BaseException:
        listener.close()
        raise
    try:
        app, runtime = build(settings, services, county=county)
    except BaseException:
        listener.close()
        if lock is not None:
            release_data_dir(lock, settings.data_dir, created=created)
        raise
    return listener, lock, app, runtime


def _serve(settings: Settings, services: Sequence[str], *, one_per_data_dir: bool) -> None:
    configure_logging(settings.log_format, settings.log_level)
    listener, lock, app, runtime = _start(settings, services, one_per_data_dir=one_per_data_dir)

    def started() -> None:
        sys.stderr.write(banner(settings, runtime.generated_admin_key, services))
        sys.stderr.flush()

    config = uvicorn.Config(
        app,
        log_config=None,
        # The app reads forwarded headers itself, from YINGJI_FORWARDED_ALLOW_IPS only.
        proxy_headers=False,
        timeout_graceful_shutdown=20,
        access_log=False,
    )
    try:
        _Server(config, started).run(sockets=[listener])
    except KeyboardInterrupt:
        # uvicorn has shut down gracefully and re-raises Ctrl-C: that is the normal way to stop.
        sys.stderr.write("yingji: stopped\n")
    finally:
        listener.close()
        if lock is not None:
            lock.close()


def cmd_up(args: argparse.Namespace) -> None:
    """All four services in one process: embedded store, memory bus, demo county."""
    check_port(args.port)
    settings = _settings(host=args.host, port=args.port, data_dir=args.data_dir)
    _serve(settings, SERVICE_NAMES, one_per_data_dir=True)


def cmd_run(args: argparse.Namespace) -> None:
    """One service, for the distributed mode (bus and store from the environment)."""
    # The distributed services may share a data directory (the test and bench stacks do).
    check_port(args.port)
    _serve(_settings(host=args.host, port=args.port), [args.service], one_per_data_dir=False)


def _add_up(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="run all four services in one process (embedded store, in-memory bus)",
        description="Run all four services in one process: the embedded store in the data "
        "directory, the in-memory bus, the demo county (or YINGJI_COUNTY_FILE). One process "
        "per data directory.",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    up.add_argument("--host", help="address to listen on (default: $YINGJI_HOST, else 127.0.0.1)")
    up.add_argument("--port", type=int, help="port to listen on (default: $YINGJI_PORT, else 8000)")
    up.add_argument(
        "--data-dir",
        help="directory of the embedded store and keys (default: $YINGJI_DATA_DIR, "
        "else ./yingji-data)",
    )
    up.set_defaults(func=cmd_up)


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="run one service (distributed mode: RabbitMQ and MongoDB from YINGJI_*)",
        description="Run one service; the bus and the store come from YINGJI_BUS_URL and "
        "YINGJI_MONGO_URL.",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    run.add_argument(
        "service", choices=SERVICE_NAMES, help=f"which service: {', '.join(SERVICE_NAMES)}"
    )
    run.add_argument("--host", help="address to listen on (default: $YINGJI_HOST, else 127.0.0.1)")
    run.add_argument(
        "--port", type=int, help="port to listen on (default: $YINGJI_PORT, else 8000)"
    )
    run.set_defaults(func=cmd_run)


# ------------------------------------------------------------------------------ dead letters


def _subscribed_queues(settings: Settings) -> list[str]:
    """The queues the services consume from. Their names depend on no data: the services are
    assembled on a throwaway embedded store, so neither MongoDB nor a data directory is touched."""
    import tempfile

    from libs.common.app import Runtime

    with tempfile.TemporaryDirectory(prefix="yingji-dlq-") as scratch:
        offline = settings.model_copy(update={"mongo_url": "", "data_dir": Path(scratch)})
        runtime = Runtime(offline, load_specs())
        try:
            return [
                sub.queue_name(spec.name)
                for spec in runtime.specs
                for sub in spec.subscriptions(runtime.contexts[spec.name])
            ]
        finally:
            runtime.stores.close()


def cmd_dlq(args: argparse.Namespace) -> None:
    """List or replay a dead-letter queue on the configured RabbitMQ broker."""
    settings = Settings()
    configure_logging("console", "WARNING")
    if settings.memory_bus:
        fail(
            "the bus is the in-memory one (YINGJI_BUS_URL=memory://): its dead letters live "
            "inside the running `yingji up`; see GET /v1/admin/dlq there, or set YINGJI_BUS_URL "
            "to the RabbitMQ broker"
        )
    queues = _subscribed_queues(settings)
    if args.action == "queues":
        for queue in queues:
            print(queue)
        return
    if not args.queue:
        fail("name the queue (see `yingji dlq queues`)")
    if args.queue not in queues:
        fail(f"{args.queue} is not a queue of Yingji (see `yingji dlq queues`)")
    if args.action == "list":
        for letter in bus.list_dead_letters(settings, args.queue, limit=args.limit or 100):
            reason = letter.headers.get("x-yingji-dead-letter-reason", "")
            print(f"{letter.message_id}\t{reason}\t{letter.body}")
    else:
        moved = bus.replay_dead_letters(settings, args.queue, args.limit)
        print(
            f"moved {moved} message(s) from {bus.dead_letter_queue_name(args.queue)} "
            f"back to {args.queue}"
        )


def _add_dlq(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq",
        help="list or replay dead-letter queues on RabbitMQ (distributed mode)",
        description="Dead-letter queues on the RabbitMQ broker of YINGJI_BUS_URL. The embedded "
        "platform's in-memory bus is inside its process: use GET /v1/admin/dlq there.",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    dlq.add_argument(
        "action",
        choices=["queues", "list", "replay"],
        help="queues: the queues that have a dead-letter queue; list: show a queue's dead "
        "letters; replay: move them back to the queue",
    )
    dlq.add_argument("queue", nargs="?", help="the queue (for list and replay)")
    dlq.add_argument(
        "--limit",
        type=int,
        default=None,
        help="at most this many messages (default: 100 for list, all for replay)",
    )
    dlq.set_defaults(func=cmd_dlq)


# ------------------------------------------------------------------------------ drill


def default_drill_url() -> str:
    """The embedded platform on this machine, at ``YINGJI_PORT`` (8000 when unset)."""
    return f"http://127.0.0.1:{os.environ.get('YINGJI_PORT') or 8000}"


def _admin_key(given: str | None) -> str:
    key = given or os.environ.get("YINGJI_BOOTSTRAP_ADMIN_KEY", "")
    if not key:
        key_file = Path(os.environ.get("YINGJI_DATA_DIR", "./yingji-data")) / "bootstrap-admin.key"
        if key_file.exists():
            key = key_file.read_text().strip()
    if not key:
        fail("give --admin-key (or YINGJI_BOOTSTRAP_ADMIN_KEY, or run from the data dir)")
    return key


def check_admin(url: str, key: str) -> None:
    """Fail with one line unless ``url`` answers and takes ``key`` as an admin key."""
    import httpx

    try:
        response = httpx.get(
            f"{url.rstrip('/')}/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        fail(f"{url} is not an http(s) address: {exc}")
    except httpx.HTTPError as exc:
        fail(f"cannot reach {url}: {exc or type(exc).__name__} (is `yingji up` running there?)")
    if response.status_code in (401, 403):
        fail(f"{url} refused the admin key ({response.status_code}); check --admin-key")
    if response.status_code != 200:
        fail(f"{url} answered {response.status_code} to GET /v1/me; is it Yingji?")
    try:
        role = response.json().get("role")
    except ValueError:
        fail(f"{url} did not answer GET /v1/me with JSON; is it Yingji?")
    if role != "admin":
        fail(f"the key given has the role {role}; the drill creates keys and needs an admin key")


def run_with_progress(drill: Any, stream: IO[str] | None = None) -> Any:
    """Run the drill on a worker thread while a progress bar shows the time and requests."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    done: dict[str, Any] = {}

    def work() -> None:
        try:
            done["recorder"] = drill.run()
        except BaseException as exc:
            done["error"] = exc

    console = Console(file=stream or sys.stderr)
    columns = (
        TextColumn("drill"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TextColumn("{task.fields[requests]} requests, {task.fields[failed]} without answer/5xx"),
        TimeRemainingColumn(),
    )
    worker = threading.Thread(target=work, name="yingji-drill", daemon=True)
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("drill", total=drill.duration, requests=0, failed=0)
        started = time.monotonic()
        worker.start()
        while worker.is_alive():
            worker.join(0.25)
            outcomes = list(drill.recorder.outcomes)
            progress.update(
                task,
                completed=min(drill.duration, time.monotonic() - started),
                requests=len(outcomes),
                failed=sum(1 for o in outcomes if o.indeterminate),
            )
    if "error" in done:
        raise done["error"]
    return done["recorder"]


def cmd_drill(args: argparse.Namespace) -> None:
    """Drive a running stack with a seeded flood-day scenario and print what happened."""
    import httpx

    from yingji.drill import Drill, format_summary

    key = _admin_key(args.admin_key)
    check_admin(args.url, key)
    drill = Drill(
        args.url,
        key,
        seed=args.seed,
        rate=args.rate,
        duration=args.duration,
        concurrency=args.concurrency,
    )
    try:
        recorder = run_with_progress(drill)
    except httpx.HTTPStatusError as exc:
        fail(f"{args.url} answered {exc.response.status_code} while setting the drill up")
    except httpx.HTTPError as exc:
        fail(f"lost {args.url} while setting the drill up: {exc or type(exc).__name__}")
    finally:
        drill.close()
    print(format_summary(recorder, args.duration))


def cmd_migrate_store(args: argparse.Namespace) -> None:
    """Bring a data directory of the previous embedded store over to the SQLite files."""
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    settings = Settings(**overrides)
    if not settings.data_dir.is_dir():
        fail(f"no data directory at {settings.data_dir.resolve()}")
    # The same lock `up` holds: a running platform's files are not copied under it.
    lock = lock_data_dir(settings.data_dir)
    try:
        previous = settings.data_dir / "store"
        if not previous.is_dir():
            # Nothing of the previous engine: no empty SQLite files are made for it either.
            print(f"nothing to migrate: no previous store at {previous.resolve()} (无需迁移)")
            return
        copied = migrate_data_dir(settings)
    finally:
        lock.close()
    for name, count in copied:
        print(f"{name}: {count} copied (已迁移 {count} 条)")


def migrate_data_dir(settings: Settings) -> list[tuple[str, int]]:
    """Run every service's ``migrate_store`` (those that have one) and the keys' migration;
    what each copied. A second run copies nothing."""
    import importlib

    from libs.common.keys.assembly import migrate_keys
    from libs.common.store import StoreFactory

    stores = StoreFactory(settings)
    copied: list[tuple[str, int]] = []
    try:
        for name, module in SERVICE_MODULES.items():
            migrate = getattr(importlib.import_module(module), "migrate_store", None)
            if migrate is not None:
                copied.append((name, migrate(settings, stores.legacy_database(name))))
        copied.append(("keys", migrate_keys(settings, stores)))
    finally:
        stores.close()
    return copied


def _add_drill(commands: Any) -> None:
    drill = commands.add_parser(
        "drill",
        help="drive a running platform like a county on a flood day (all writes are 演练)",
        description="Drive a running platform over HTTP with a seeded flood-day scenario; every "
        "write is marked exercise (演练) and leaves real operations untouched.",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    drill.add_argument(
        "--url",
        default=default_drill_url(),
        help="the platform's address (default: http://127.0.0.1:$YINGJI_PORT, now %(default)s)",
    )
    drill.add_argument(
        "--admin-key",
        help="an admin key (default: $YINGJI_BOOTSTRAP_ADMIN_KEY, else the bootstrap key "
        "file in $YINGJI_DATA_DIR or ./yingji-data)",
    )
    drill.add_argument("--seed", type=int, default=1, help="seed of the scenario")
    drill.add_argument("--rate", type=float, default=10.0, help="operations per second")
    drill.add_argument("--duration", type=float, default=60.0, help="seconds to run")
    drill.add_argument("--concurrency", type=int, default=8, help="requests in flight at most")
    drill.set_defaults(func=cmd_drill)


def _add_migrate_store(commands: Any) -> None:
    migrate = commands.add_parser(
        "migrate-store",
        help="copy data of the previous embedded store into the SQLite files",
        description="Copy a data directory written by the previous embedded store (litemongo, "
        "read without it) into the SQLite files, losing nothing; a second run copies nothing. "
        "The platform also does this on its first start.",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    migrate.add_argument(
        "--data-dir",
        help="the data directory to migrate (default: $YINGJI_DATA_DIR, else ./yingji-data)",
    )
    migrate.set_defaults(func=cmd_migrate_store)


# ------------------------------------------------------------------------------ backup, restore


def _data_dir(given: str | None) -> Path:
    return Path(given) if given else Settings().data_dir


def cmd_backup(args: argparse.Namespace) -> None:
    """Copy the embedded data directory, online, into a checked archive."""
    from yingji.backup import BackupError, backup

    data_dir, output = _data_dir(args.data_dir), Path(args.output)
    if output.resolve().is_relative_to(data_dir.resolve()):
        fail(f"write the backup outside the data directory ({data_dir.resolve()})")
    try:
        archive, count = backup(data_dir, output)
    except BackupError as exc:
        fail(str(exc))
    print(f"{archive}: {count} files (已备份文件数)")


def cmd_restore(args: argparse.Namespace) -> None:
    """Restore a backup archive into a data directory no process is using."""
    from yingji.backup import BackupError, restore

    data_dir = _data_dir(args.data_dir)
    try:
        count, aside = restore(Path(args.archive), data_dir, replace=args.replace)
    except BackupError as exc:
        fail(str(exc))
    print(f"{data_dir.resolve()}: {count} files restored (已恢复文件数)")
    if aside is not None:
        print(f"the files it held before are in {aside}")


def _add_backup(commands: Any) -> None:
    backup = commands.add_parser(
        "backup",
        help="archive the embedded data directory (safe while `yingji up` runs)",
        description="Copy every SQLite file of the data directory with SQLite's online backup "
        "API (consistent while the platform runs), and its key files, into "
        "yingji-backup-<UTC time>.tar.gz with a manifest of SHA-256 checksums. MongoDB is backed "
        "up with mongodump instead (docs/operations.md).",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    backup.add_argument(
        "--data-dir",
        help="the data directory to back up (default: $YINGJI_DATA_DIR, else ./yingji-data)",
    )
    backup.add_argument("--output", default=".", help="directory the archive is written to")
    backup.set_defaults(func=cmd_backup)


def _add_restore(commands: Any) -> None:
    restore = commands.add_parser(
        "restore",
        help="restore a `yingji backup` archive into a stopped data directory",
        description="Check the archive (every checksum, every SQLite file's integrity), then "
        "restore it into the data directory. Refuses a directory a running yingji holds, and one "
        "that already holds data unless --replace is given.",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    restore.add_argument("archive", help="the yingji-backup-*.tar.gz file")
    restore.add_argument(
        "--data-dir",
        help="the data directory to restore into (default: $YINGJI_DATA_DIR, else ./yingji-data)",
    )
    restore.add_argument(
        "--replace",
        action="store_true",
        help="move the files the directory holds into <dir>.before-restore-<time> first "
        "(default: refuse a directory that holds data)",
    )
    restore.set_defaults(func=cmd_restore)


# ------------------------------------------------------------------------------ the command

SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (
    _add_up,
    _add_run,
    _add_dlq,
    _add_drill,
    _add_migrate_store,
    _add_backup,
    _add_restore,
)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    top = argparse.ArgumentParser(
        prog="yingji",
        description="Yingji 应急 county emergency platform. `yingji <command> --help` tells more.",
        formatter_class=_Formatter,
        epilog=environment_help(),
    )
    commands = top.add_subparsers(dest="command", required=True, title="commands")
    for add in SUBCOMMANDS:
        add(commands)
    return top


def _quiet_broken_pipe() -> NoReturn:
    # The reader went away (`yingji dlq list q | head`): no traceback, and no second error when
    # the interpreter flushes stdout on exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        classes: list[type[BaseSettings]] = [Settings, *service_settings_classes()]
        prefixes = {
            cls.__name__: str(cls.model_config.get("env_prefix", "")).upper() for cls in classes
        }
        if exc.title not in prefixes:
            return f"{exc.title} is not valid: {validation_problems(exc)}"
        problems = "; ".join(
            f"{prefixes[exc.title]}{'_'.join(str(p) for p in error['loc']).upper()}: "
            f"{error['msg'].removeprefix('Value error, ')}"
            for error in exc.errors()
        )
        return f"a setting is not valid: {problems}"
    return str(exc)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``yingji`` command."""
    args = parser().parse_args(argv)
    if args.command == "up":
        os.environ.setdefault("YINGJI_LOG_FORMAT", "console")
    try:
        args.func(args)
        sys.stdout.flush()
    except (CliError, ValidationError, DamagedStoreError) as exc:
        sys.stderr.write(f"yingji {args.command}: {_one_line(exc)}\n")
        sys.exit(1)
    except BrokenPipeError:
        _quiet_broken_pipe()
    except KeyboardInterrupt:
        sys.stderr.write(f"yingji {args.command}: interrupted\n")
        sys.exit(130)


if __name__ == "__main__":
    main()
