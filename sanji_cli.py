"""The `sanji` command: one sub-command per tier, plus `demo` that brings up the demo network."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    from central.services.resync import resync_directory
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
        resync_directory(session, server)
        result = publish(session, server, "admin")
    print("演示数据: " + ", ".join(f"{k} +{v}" for k, v in added.items()))
    print(f"目录版本: {result.version}" + (" (新发布)" if result.created else " (无变化)"))
    return 0


def cmd_district_resync(args: argparse.Namespace) -> int:
    """Rewrite what CouchDB lacks of the directory, settings and the published catalogue."""
    from central.db import make_engine, make_sessionmaker, migrate
    from central.services.publish import restore_published
    from central.services.resync import resync_directory
    from sync.couch import connect

    settings = _district_settings(args)
    if not settings.couchdb_url:
        print("请设置 COUCHDB_URL", file=sys.stderr)
        return 2
    migrate(settings.database_url)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    server = connect(settings.couchdb_url, timeout=settings.couch_timeout)
    with sessions() as session:
        written = resync_directory(session, server)
        catalogue = restore_published(session, server)
    print(f"已补写 {written} 个目录/设置文档")
    print(
        {
            "intact": "已发布目录完整",
            "rewritten": "已重新写入最新发布的目录版本",
            "none": "目录尚未发布",
            "changed": "最新发布的目录版本已丢失且事项已修改: 请重新发布目录",
        }[catalogue]
    )
    return 1 if catalogue == "changed" else 0


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
        wait_for_signal()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Bring up the demo network and print where everything is."""
    from central.app import create_app
    from central.demo import DEMO_LOGINS
    from sanji_demo import (
        DEMO_KIOSKS,
        DEMO_TOWNSHIPS,
        DemoNetwork,
        default_var,
        hide_password,
        issue_demo_code,
        register_demo_nodes,
        write_demo_history,
    )
    from sync.topology import setup_district, setup_township

    var = default_var()
    var.mkdir(parents=True, exist_ok=True)
    net = DemoNetwork(var, args.host, args.port, args.couch_port, args.couch_password)
    try:
        district_url = (
            os.environ.get("COUCHDB_URL") or net.dev_couch("district", args.couch_port).url
        )
        args.couchdb_url = district_url
        if cmd_district_load_demo(args) != 0:
            return 1
        setup_district(district_url)
        written = write_demo_history(district_url)
        if written:
            print(f"演示办件历史: 写入 {written} 份办件文档 (最近六周, 静观镇和天生街道)")
        settings = _district_settings(args)
        district_web = net.serve("district", create_app(settings), args.port)
        townships: dict[str, tuple[Any, str]] = {}
        for offset, code in enumerate(DEMO_TOWNSHIPS, start=1):
            couch = net.dev_couch(code, args.couch_port + offset)
            setup_township(couch.url, code, net.node_url(district_url, code))
            townships[code] = (couch, net.township_node(code, couch, args.port + 100 + offset))
        register_demo_nodes(settings.database_url, district_url, {
            code: node for code, (_, node) in townships.items()})  # fmt: skip
        issue = issue_demo_code(settings.database_url, district_url)
        kiosks = {}
        for offset, village in enumerate(DEMO_KIOSKS, start=1):
            township_url = townships[village[:9] + "000"][1]
            kiosks[village] = net.kiosk(village, township_url, issue, args.port + 200 + offset)
        print()
        print("三级四务 演示网络已启动 (Ctrl+C 停止)")
        print(f"  区级管理端     {district_web}")
        print(f"  API 文档       {district_web}api/v1/schema")
        print(f"  Open311        {district_web}open311/v2/services.json")
        print(f"  群众预约上门   {district_web}visit   (查进度 {district_web}progress)")
        print(f"  区级 CouchDB   {hide_password(district_url)}")
        for code, (couch, node) in townships.items():
            print(f"  镇街 {code}  控制台 {node}  CouchDB {couch.base_url}")
        for village, url in kiosks.items():
            print(f"  村终端 {village}  {url}")
        if net.couch_servers:
            print(f"  (CouchDB 为开发用 pouchdb-server, 管理员 admin / {args.couch_password})")
        print("  复制状态:")
        for url in [district_url] + [couch.url for couch, _ in townships.values()]:
            print(f"    .venv/bin/sanji sync status --couchdb-url {url}")
        print("  登录账号 (镇街人员登录本镇街控制台, 村代办员在本村终端登录):")
        for username, password, what in DEMO_LOGINS:
            print(f"    {what:<12} {username:<12} {password}")
        sys.stdout.flush()
        net.wait()
    finally:
        net.stop()
    return 0


def wait_for_signal(threads: Sequence[threading.Thread] = ()) -> None:
    """Block until SIGINT or SIGTERM, or until any of ``threads`` ends."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        if any(not thread.is_alive() for thread in threads):
            return
        stop.wait(0.5)


def _couch_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--couchdb-url", help=f"{what} 的地址, 带账号 (默认环境变量 COUCHDB_URL)")


def _couch_url(args: argparse.Namespace) -> str | None:
    url = getattr(args, "couchdb_url", None) or os.environ.get("COUCHDB_URL")
    if not url:
        print("请设置 COUCHDB_URL 或 --couchdb-url (带管理员账号)", file=sys.stderr)
    return url


def _topology_errors(run):  # type: ignore[no-untyped-def]
    """Run a topology command; print a clear message and return 2 on a refused set-up."""
    from core.errors import InvalidInput
    from sync.errors import SyncError

    try:
        return run()
    except (SyncError, ValueError, InvalidInput) as exc:
        print(f"失败 / failed: {exc}", file=sys.stderr)
        return 2


def _print_report(report) -> None:  # type: ignore[no-untyped-def]
    for change in report.changes:
        print(f"  + {change}")
    print(
        f"已变更 {len(report.changes)} 项, 已就绪 {report.unchanged} 项 / "
        f"{len(report.changes)} changed, {report.unchanged} already in place"
    )


def cmd_district_setup(args: argparse.Namespace) -> int:
    """Create or check the district CouchDB's databases, security and design documents."""
    from sync.topology import setup_district

    url = _couch_url(args)
    if not url:
        return 2

    def run() -> int:
        _print_report(setup_district(url))
        return 0

    return _topology_errors(run)


def cmd_district_add_node(args: argparse.Namespace) -> int:
    """Create a township node's replication user on the district CouchDB."""
    from urllib.parse import urlsplit

    from sync.topology import add_node, node_username

    url = _couch_url(args)
    if not url:
        return 2

    def run() -> int:
        password = add_node(url, args.township, reset=args.reset)
        name = node_username(args.township.strip())
        if password is None:
            print(f"账号 {name} 已存在, 未改动 (要重设密码请加 --reset) / exists, unchanged")
            return 0
        base = urlsplit(args.public_url or url)
        host = base.hostname or "127.0.0.1"
        port = f":{base.port}" if base.port else ""
        print(f"账号 / user: {name}")
        print(f"密码 / password: {password}   (只显示这一次 / shown once)")
        print(
            f"镇街 setup 用 / for township setup: --district-url "
            f"{base.scheme}://{name}:{password}@{host}{port}/"
        )
        if args.reset:
            print("镇街节点需用新地址重新执行 sanji township setup / re-run township setup")
        return 0

    return _topology_errors(run)


def cmd_district_register_node(args: argparse.Namespace) -> int:
    """Register a township node (URL and API key) and publish its directory document."""
    from central.db import make_engine, make_sessionmaker, migrate
    from central.services import outbox
    from central.services.nodes import register_node
    from core.errors import DomainError
    from sync.couch import connect

    settings = _district_settings(args)
    migrate(settings.database_url)
    sessions = make_sessionmaker(make_engine(settings.database_url))
    try:
        with sessions() as session:
            key = register_node(session, args.township, args.url, new_key=args.new_key)
    except DomainError as exc:
        print(f"失败 / failed: {exc}", file=sys.stderr)
        return 2
    print(f"镇街节点 / township node {args.township.strip()}: {args.url.strip().rstrip('/')}")
    if key is None:
        print("已更新地址, 密钥不变 (要换密钥请加 --new-key) / URL updated, key unchanged")
    else:
        print(f"API 密钥 / key: {key}   (只显示这一次 / shown once)")
    with sessions() as session:
        waiting = outbox.pending_count(session)
    if settings.couchdb_url:
        outbox.flush(sessions, lambda: connect(settings.couchdb_url, timeout=10.0))
        with sessions() as session:
            waiting = outbox.pending_count(session)
    if waiting:
        print("目录文档已排队, 区级服务器运行时写入 CouchDB / directory document queued")
    else:
        print(f"目录文档 township_node:{args.township.strip()} 已发布 / published")
    return 0


def cmd_township_setup(args: argparse.Namespace) -> int:
    """Create or check the township CouchDB and its replications with the district."""
    from sync.topology import setup_township

    url = _couch_url(args)
    if not url:
        return 2

    def run() -> int:
        report = setup_township(url, args.code, args.district_url, self_url=args.self_url)
        print("村: " + (", ".join(report.villages) or "(目录中尚无本镇街的村)"))
        _print_report(report)
        return 0

    return _topology_errors(run)


def cmd_township_apply_revocations(args: argparse.Namespace) -> int:
    """Delete the kiosk users whose registration the directory marks revoked."""
    from sync.topology import apply_revocations

    url = _couch_url(args)
    if not url:
        return 2

    def run() -> int:
        deleted = apply_revocations(url)
        print(f"已删除 {len(deleted)} 个终端账号 / deleted: " + (", ".join(deleted) or "-"))
        return 0

    return _topology_errors(run)


def cmd_township_project(args: argparse.Namespace) -> int:
    """Follow the township database into the township's SQL read model."""
    import time

    from sync.couch import connect
    from sync.sql import make_engine, make_sessionmaker
    from township.db import migrate
    from township.read_model import project_township

    url = _couch_url(args)
    if not url:
        return 2
    var = Path(os.environ.get("SANJI_VAR", ROOT / "var"))
    var.mkdir(parents=True, exist_ok=True)
    database = (
        os.environ.get("TOWNSHIP_DATABASE_URL")
        or f"sqlite:///{var / f'township-{args.code}.sqlite'}"
    )
    migrate(database)
    sessions = make_sessionmaker(make_engine(database))
    while True:
        result = project_township(sessions, connect(url))
        if result is not None and (result.changes or args.once):
            print(f"读模型: {result.cases_projected} 件更新, 检查点 {result.last_seq}", flush=True)
        if args.once:
            return 0 if result is not None else 1
        time.sleep(args.interval)


def cmd_township_serve(args: argparse.Namespace) -> int:
    """Run the township node (kiosk enrolment; migrations first)."""
    import uvicorn

    from core.errors import InvalidInput
    from township.app import create_app
    from township.db import migrate
    from township.settings import settings_from_env

    url = _couch_url(args)
    if not url:
        return 2
    try:
        settings = settings_from_env(args.code, couchdb_url=url)
    except (ValueError, InvalidInput) as exc:
        print(f"失败 / failed: {exc}", file=sys.stderr)
        return 2
    migrate(settings.database_url)
    print(f"镇街节点 {settings.code}: http://{args.host}:{args.port}/", flush=True)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_sync_status(args: argparse.Namespace) -> int:
    """Print each replication's state, lag and last error; non-zero if any is failing."""
    from sync.status import format_status, replication_status

    url = _couch_url(args)
    if not url:
        return 2

    def run() -> int:
        rows = replication_status(url, max_scan=args.max_scan, full=args.full)
        print(format_status(rows))
        return 1 if any(row.failing for row in rows) else 0

    return _topology_errors(run)


def cmd_kiosk(args: argparse.Namespace) -> int:
    """Run the village kiosk on 127.0.0.1, in its window unless --headless."""
    import socket

    import uvicorn

    from village_node.app import create_app
    from village_node.settings import settings_from_env

    try:
        settings = settings_from_env(args.data, sync_interval=args.sync_interval)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    port = args.port
    if not port:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    print(f"村便民服务站终端: http://127.0.0.1:{port}/  数据: {settings.data_dir}", flush=True)
    if not args.headless:
        from village_node.window import run_window

        return run_window(settings, port, fullscreen=args.fullscreen)
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    return 0


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
    demo.add_argument(
        "--couch-port",
        type=int,
        default=5984,
        help="区级 CouchDB 端口; 镇街依次加1 (默认 5984, 5985, 5986)",
    )
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
    dsub.add_parser(
        "resync", help="按数据库补写 CouchDB 中缺失或不一致的目录、设置和已发布目录"
    ).set_defaults(func=cmd_district_resync)
    dsub.add_parser("load-demo", help="载入演示区县 (北碚区) 并发布目录").set_defaults(
        func=cmd_district_load_demo
    )
    dsetup = dsub.add_parser(
        "setup", help="建立或检查区级 CouchDB 的数据库、权限和设计文档 (可重复执行)"
    )
    _couch_option(dsetup, "区级 CouchDB (管理员)")
    dsetup.set_defaults(func=cmd_district_setup)
    node = dsub.add_parser(
        "add-node", help="为一个镇街节点建立区级 CouchDB 复制账号, 只打印一次密码"
    )
    node.add_argument("--township", required=True, help="镇街的12位区划代码")
    node.add_argument("--reset", action="store_true", help="账号已存在时重设密码")
    node.add_argument(
        "--public-url", help="镇街访问区级 CouchDB 的地址 (默认 COUCHDB_URL 的主机和端口)"
    )
    _couch_option(node, "区级 CouchDB (管理员)")
    node.set_defaults(func=cmd_district_add_node)

    register = dsub.add_parser(
        "register-node",
        help="登记镇街节点的地址并生成 API 密钥 (只打印一次), 发布 township_node 目录文档",
    )
    register.add_argument("--township", required=True, help="镇街的12位区划代码")
    register.add_argument("--url", required=True, help="镇街节点的地址, 如 http://10.0.0.5:8100")
    register.add_argument("--new-key", action="store_true", help="已登记时重新生成密钥")
    _couch_option(register, "区级 CouchDB (管理员)")
    register.set_defaults(func=cmd_district_register_node)

    couch = tiers.add_parser(
        "couch", help="运行开发用的 CouchDB 替身 pouchdb-server (不可用于生产)"
    )
    couch.add_argument("--data", default=str(ROOT / "var" / "couch" / "dev"), help="数据目录")
    couch.add_argument("--password", default="sanji-dev", help="管理员 admin 的密码")
    couch.set_defaults(func=cmd_couch)

    township = tiers.add_parser("township", help="镇街便民服务中心节点 (CouchDB 拓扑; 控制台见 #5)")
    tsub = township.add_subparsers(dest="action", required=True)
    tsetup = tsub.add_parser(
        "setup",
        help="建立或检查本镇街 CouchDB 的数据库、权限、设计文档和持续复制 (可重复执行)",
    )
    tsetup.add_argument("--code", required=True, help="本镇街的12位区划代码")
    tsetup.add_argument(
        "--district-url",
        required=True,
        help="区级 CouchDB 地址, 带本节点账号 (sanji district add-node 打印的那个)",
    )
    tsetup.add_argument(
        "--self-url",
        help="本服务器访问自己的地址, 带管理员账号 (默认 COUCHDB_URL)",
    )
    _couch_option(tsetup, "本镇街的 CouchDB (管理员)")
    tsetup.set_defaults(func=cmd_township_setup)
    revoke = tsub.add_parser("apply-revocations", help="删除目录中已吊销注册的村终端账号")
    _couch_option(revoke, "本镇街的 CouchDB (管理员)")
    revoke.set_defaults(func=cmd_township_apply_revocations)
    tproject = tsub.add_parser(
        "project",
        help="把本镇街 township 库的案件投影到 SQL 读模型 (TOWNSHIP_DATABASE_URL)",
    )
    tproject.add_argument("--code", required=True, help="镇街的12位区划代码")
    tproject.add_argument("--once", action="store_true", help="追上一次后退出")
    tproject.add_argument("--interval", type=float, default=10.0, help="轮询间隔秒数 (默认 10)")
    _couch_option(tproject, "本镇街的 CouchDB")
    tproject.set_defaults(func=cmd_township_project)

    tserve = tsub.add_parser("serve", help="运行镇街节点 (村终端注册接口; 先执行数据库迁移)")
    tserve.add_argument("--code", required=True, help="本镇街的12位区划代码")
    tserve.add_argument("--host", default="127.0.0.1", help="监听地址 (默认 127.0.0.1)")
    tserve.add_argument("--port", type=int, default=8100, help="端口 (默认 8100)")
    _couch_option(tserve, "本镇街的 CouchDB (管理员)")
    tserve.set_defaults(func=cmd_township_serve)

    sync = tiers.add_parser("sync", help="复制 (同步) 工具")
    ssub = sync.add_subparsers(dest="action", required=True)
    status = ssub.add_parser(
        "status", help="列出本服务器每个复制任务的状态、滞后和最近错误; 有出错的返回非零"
    )
    status.add_argument(
        "--max-scan",
        type=int,
        default=10_000,
        help="计算滞后时每个复制最多查看的变更数 (默认 10000)",
    )
    status.add_argument(
        "--full",
        action="store_true",
        help="从头比较而不从检查点开始, 也数出目标拒收或丢失的文档 (较慢)",
    )
    _couch_option(status, "要检查的 CouchDB (管理员)")
    status.set_defaults(func=cmd_sync_status)

    kiosk = tiers.add_parser("kiosk", help="村便民服务站终端 (只监听 127.0.0.1)")
    kiosk.add_argument(
        "--data", help="终端数据目录 (存储、启用信息; 默认环境变量 SANJI_KIOSK_DATA)"
    )
    kiosk.add_argument("--port", type=int, default=0, help="端口 (默认自动选一个空闲端口)")
    kiosk.add_argument("--headless", action="store_true", help="不打开窗口, 只提供网页服务")
    kiosk.add_argument("--fullscreen", action="store_true", help="窗口全屏 (触摸屏终端)")
    kiosk.add_argument(
        "--sync-interval",
        type=float,
        default=None,
        help="自动同步间隔秒数 (默认 300; 0 关闭自动同步)",
    )
    kiosk.set_defaults(func=cmd_kiosk)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sanji` console script."""
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
