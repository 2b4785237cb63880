"""The `sanji` command: one sub-command per tier, plus `demo` that brings up the demo network."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent


def _district_settings(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from central.settings import settings_from_env

    return settings_from_env(couchdb_url=getattr(args, "couchdb_url", None))


def cmd_district_migrate(args: argparse.Namespace) -> int:
    """Bring the district database to the newest schema."""
    from central.db import migrate

    settings = _district_settings(args)
    migrate(settings.database_url)
    print(f"数据库已是最新结构: {settings.database_url}")
    return 0


def cmd_district_load_demo(args: argparse.Namespace) -> int:
    """Load the demo district (北碚区) and publish its catalogue."""
    from central.db import make_engine, make_sessionmaker, migrate
    from central.demo import load_demo
    from central.services import outbox
    from central.services.publish import publish
    from sync.couch import connect

    settings = _district_settings(args)
    if not settings.couchdb_url:
        print(
            "请设置 COUCHDB_URL (或使用 `sanji demo`, 它会启动开发用的 pouchdb-server)",
            file=sys.stderr,
        )
        return 2
    migrate(settings.database_url)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    with sessions() as session:
        added = load_demo(session)
    server = connect(settings.couchdb_url, timeout=settings.couch_timeout)
    outbox.flush(sessions, lambda: server)
    with sessions() as session:
        result = publish(session, server, "admin")
    print("演示数据: " + ", ".join(f"{k} +{v}" for k, v in added.items()))
    print(f"目录版本: {result.version}" + (" (新发布)" if result.created else " (无变化)"))
    return 0


def cmd_district_serve(args: argparse.Namespace) -> int:
    """Run the district server."""
    import uvicorn

    from central.app import create_app
    from central.db import migrate

    settings = _district_settings(args)
    if not settings.couchdb_url:
        print("请设置 COUCHDB_URL (或使用 `sanji demo`)", file=sys.stderr)
        return 2
    migrate(settings.database_url)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_couch(args: argparse.Namespace) -> int:
    """Run the development CouchDB stand-in (pouchdb-server) until interrupted."""
    from sync.devserver import PouchServer

    data = Path(args.data).resolve()
    with PouchServer(data_dir=data, password=args.password) as server:
        print(f"pouchdb-server (仅供开发和测试): {server.base_url}  数据: {data}", flush=True)
        _wait_for_signal()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Bring up the demo network and print where everything is."""
    import threading

    import uvicorn

    from central.app import create_app
    from central.demo import DEMO_LOGINS

    var = Path(os.environ.get("SANJI_VAR", ROOT / "var"))
    var.mkdir(parents=True, exist_ok=True)
    server = None
    if not os.environ.get("COUCHDB_URL"):
        from sync.devserver import PouchServer

        server = PouchServer(
            data_dir=var / "couch" / "district", password=args.couch_password
        ).start()
        os.environ["COUCHDB_URL"] = server.url
    try:
        args.couchdb_url = os.environ["COUCHDB_URL"]
        if cmd_district_load_demo(args) != 0:
            return 1
        settings = _district_settings(args)
        config = uvicorn.Config(
            create_app(settings), host=args.host, port=args.port, log_level="warning"
        )
        web = uvicorn.Server(config)
        thread = threading.Thread(target=web.run, daemon=True)
        thread.start()
        while not web.started and thread.is_alive():
            thread.join(0.1)
        couch_shown = server.base_url if server else _hide_password(os.environ["COUCHDB_URL"])
        print()
        print("三级四务 演示网络已启动 (Ctrl+C 停止)")
        print(f"  区级管理端   http://{args.host}:{args.port}/")
        print(f"  区级 CouchDB {couch_shown}" + ("  (pouchdb-server, 仅供开发)" if server else ""))
        print(f"  API 文档     http://{args.host}:{args.port}/api/v1/schema")
        print(f"  Open311      http://{args.host}:{args.port}/open311/v2/services.json")
        print("  镇街节点和村终端: 尚未实现 (见 issue #4、#5)")
        print("  登录账号:")
        for username, password, what in DEMO_LOGINS:
            print(f"    {what:<12} {username:<12} {password}")
        sys.stdout.flush()
        _wait_for_signal(thread)
        web.should_exit = True
        thread.join(10)
    finally:
        if server is not None:
            server.stop()
    return 0


def _hide_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=f"{parts.username}:***@{parts.hostname}:{parts.port}")
    return urlunsplit(parts)


def _wait_for_signal(thread=None) -> None:  # type: ignore[no-untyped-def]
    import threading

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        if thread is not None and not thread.is_alive():
            return
        stop.wait(0.5)


def cmd_not_yet(args: argparse.Namespace) -> int:
    """A tier that later issues build."""
    print(f"`sanji {args.tier}` 尚未实现 (见 issue {args.issue}).", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, every command with help text."""
    parser = argparse.ArgumentParser(prog="sanji", description="三级四务: 区、镇街、村三级服务网络")
    tiers = parser.add_subparsers(dest="command", required=True)

    demo = tiers.add_parser(
        "demo", help="启动演示网络 (CouchDB、区级服务器和演示数据) 并打印地址和账号"
    )
    demo.add_argument("--host", default="127.0.0.1", help="监听地址 (默认 127.0.0.1)")
    demo.add_argument("--port", type=int, default=8000, help="区级服务器端口 (默认 8000)")
    demo.add_argument("--couch-password", default="sanji-dev", help="开发用 CouchDB 管理员密码")
    demo.set_defaults(func=cmd_demo)

    district = tiers.add_parser("district", help="区级服务器")
    dsub = district.add_subparsers(dest="action", required=True)
    serve = dsub.add_parser("serve", help="运行区级服务器 (先执行数据库迁移)")
    serve.add_argument("--host", default="127.0.0.1", help="监听地址")
    serve.add_argument("--port", type=int, default=8000, help="端口")
    serve.set_defaults(func=cmd_district_serve)
    dsub.add_parser("migrate", help="把数据库升级到最新结构 (alembic upgrade head)").set_defaults(
        func=cmd_district_migrate
    )
    dsub.add_parser("load-demo", help="载入演示区县 (北碚区) 并发布目录").set_defaults(
        func=cmd_district_load_demo
    )

    couch = tiers.add_parser(
        "couch", help="运行开发用的 CouchDB 替身 pouchdb-server (不可用于生产)"
    )
    couch.add_argument("--data", default=str(ROOT / "var" / "couch" / "dev"), help="数据目录")
    couch.add_argument("--password", default="sanji-dev", help="管理员 admin 的密码")
    couch.set_defaults(func=cmd_couch)

    for tier, issue, text in (
        ("township", "#5", "镇街便民服务中心节点"),
        ("kiosk", "#4", "村便民服务站终端"),
    ):
        p = tiers.add_parser(tier, help=f"{text} (尚未实现)")
        p.set_defaults(func=cmd_not_yet, tier=tier, issue=issue)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sanji` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
