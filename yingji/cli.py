"""The ``yingji`` command: run the platform, one service, or operate dead-letter queues."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import uvicorn

from libs.common import bus
from libs.common.logging import configure_logging
from libs.common.settings import Settings
from yingji.platform import SERVICE_NAMES, build, load_specs


def _banner(settings: Settings, key: str | None, services: Sequence[str]) -> str:
    base = f"http://{settings.host}:{settings.port}"
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


def _serve(settings: Settings, services: Sequence[str]) -> None:
    configure_logging(settings.log_format, settings.log_level)
    app, runtime = build(settings, services)
    sys.stderr.write(_banner(settings, runtime.generated_admin_key, services))
    sys.stderr.flush()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # The app reads forwarded headers itself, from YINGJI_FORWARDED_ALLOW_IPS only.
        proxy_headers=False,
        timeout_graceful_shutdown=20,
        access_log=False,
    )


def cmd_up(args: argparse.Namespace) -> None:
    """All four services in one process: embedded store, memory bus, demo county."""
    overrides = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    _serve(settings, SERVICE_NAMES)


def cmd_run(args: argparse.Namespace) -> None:
    """One service, for the distributed mode (bus and store from the environment)."""
    overrides = {"host": args.host, "port": args.port}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    _serve(settings, [args.service])


def _all_queues(settings: Settings) -> list[str]:
    from libs.common.app import Runtime

    runtime = Runtime(settings, load_specs())
    runtime.prepare()
    queues = runtime.known_queues()
    runtime.stop()
    return queues


def cmd_dlq(args: argparse.Namespace) -> None:
    """List or replay a dead-letter queue on the configured broker."""
    settings = Settings()
    configure_logging("console", "WARNING")
    if args.action == "queues":
        for queue in _all_queues(settings):
            print(queue)
        return
    if not args.queue:
        raise SystemExit("name the queue (see `yingji dlq queues`)")
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


def cmd_drill(args: argparse.Namespace) -> None:
    """Drive a running stack with a seeded flood-day scenario and print what happened."""
    from pathlib import Path

    from yingji.drill import Drill, format_summary

    key = args.admin_key or os.environ.get("YINGJI_BOOTSTRAP_ADMIN_KEY", "")
    if not key:
        key_file = Path(os.environ.get("YINGJI_DATA_DIR", "./yingji-data")) / "bootstrap-admin.key"
        if key_file.exists():
            key = key_file.read_text().strip()
    if not key:
        raise SystemExit(
            "give --admin-key (or YINGJI_BOOTSTRAP_ADMIN_KEY, or run from the data dir)"
        )
    drill = Drill(
        args.url,
        key,
        seed=args.seed,
        rate=args.rate,
        duration=args.duration,
        concurrency=args.concurrency,
    )
    try:
        recorder = drill.run()
    finally:
        drill.close()
    print(format_summary(recorder, args.duration))


def cmd_migrate_store(args: argparse.Namespace) -> None:
    """Bring a data directory of the previous embedded store over to the SQLite files."""
    from libs.common.store import StoreFactory
    from services.intake.service import migrate_store as migrate_intake

    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    settings = Settings(**overrides)
    stores = StoreFactory(settings)
    try:
        copied = migrate_intake(settings, stores.database("intake"))
    finally:
        stores.close()
    print(f"intake: {copied} incidents copied (已迁移事件数)")


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    top = argparse.ArgumentParser(prog="yingji", description="Yingji 应急 emergency platform")
    commands = top.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run everything in one process (embedded)")
    up.add_argument("--host")
    up.add_argument("--port", type=int)
    up.add_argument("--data-dir")
    up.set_defaults(func=cmd_up)

    run = commands.add_parser("run", help="run one service (distributed mode)")
    run.add_argument("service", choices=SERVICE_NAMES)
    run.add_argument("--host")
    run.add_argument("--port", type=int)
    run.set_defaults(func=cmd_run)

    dlq = commands.add_parser("dlq", help="inspect or replay dead-letter queues")
    dlq.add_argument("action", choices=["queues", "list", "replay"])
    dlq.add_argument("queue", nargs="?")
    dlq.add_argument("--limit", type=int, default=None)
    dlq.set_defaults(func=cmd_dlq)
    drill = commands.add_parser("drill", help="drive a running stack like a county on a flood day")
    drill.add_argument("--url", default="http://127.0.0.1:8000")
    drill.add_argument("--admin-key")
    drill.add_argument("--seed", type=int, default=1)
    drill.add_argument("--rate", type=float, default=10.0, help="operations per second")
    drill.add_argument("--duration", type=float, default=60.0, help="seconds")
    drill.add_argument("--concurrency", type=int, default=8)
    drill.set_defaults(func=cmd_drill)
    migrate = commands.add_parser(
        "migrate-store", help="copy data of the previous embedded store into the SQLite files"
    )
    migrate.add_argument("--data-dir")
    migrate.set_defaults(func=cmd_migrate_store)
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``yingji`` command."""
    args = parser().parse_args(argv)
    if args.command == "up":
        os.environ.setdefault("YINGJI_LOG_FORMAT", "console")
    args.func(args)


if __name__ == "__main__":
    main()
