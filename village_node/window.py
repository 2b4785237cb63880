"""The kiosk's desktop window: the local web app in a pywebview (Qt) window.

The app is served by uvicorn in a background thread on 127.0.0.1; the window runs on the main
thread (Qt wants it there) and closing it stops the server, whose lifespan closes the store.
pywebview and Qt are imported only here, inside ``run_window``: the rest of Sanji never needs
them (they come with the ``sanji[kiosk]`` extra).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import TYPE_CHECKING

import uvicorn

from village_node.app import create_app
from village_node.settings import Settings

if TYPE_CHECKING:
    from webview import Window

__all__ = ["MIN_SIZE", "SMOKE_ENV", "TITLE", "run_window"]

TITLE = "三级四务 · 村便民服务站"
MIN_SIZE = (1024, 700)
SMOKE_ENV = "SANJI_WINDOW_SMOKE"
"""Set to 1 (tests only): print the loaded page as JSON, then close the window."""

MISSING = (
    "没有安装终端窗口组件 (pywebview + Qt): 请安装 sanji[kiosk] (pip install -e '.[kiosk]'),"
    " 或加 --headless 以无窗口方式运行。\n"
    "The kiosk window needs pywebview with Qt: install sanji[kiosk], or run with --headless.\n"
    "({error})"
)
NO_DISPLAY = (
    "没有图形界面 (DISPLAY / WAYLAND_DISPLAY 都未设置): 请在桌面上运行, 或加 --headless。\n"
    "No display (neither DISPLAY nor WAYLAND_DISPLAY is set): run on a desktop, or use --headless."
)


def run_window(settings: Settings, port: int, *, fullscreen: bool = False) -> int:
    """Serve the kiosk on 127.0.0.1:``port`` and show it in a window until the window closes."""
    try:
        import webview
        from qtpy import QtWebEngineWidgets  # noqa: F401  (the backend; fails without Qt)
    except ImportError as exc:  # qtpy's "no bindings" error is an ImportError too
        print(MISSING.format(error=exc), file=sys.stderr)
        return 2
    if not _has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    _allow_root()

    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="kiosk-server", daemon=True)
    thread.start()
    try:
        if not _wait_started(server, thread, timeout=30.0):
            print(f"终端服务没有启动 (端口 {port}) / the server did not start", file=sys.stderr)
            return 1
        window = webview.create_window(
            TITLE,
            f"http://127.0.0.1:{port}/",
            width=1280,
            height=800,
            min_size=MIN_SIZE,
            fullscreen=fullscreen,
        )
        assert window is not None  # None only when a window is made during a running GUI loop
        if os.environ.get(SMOKE_ENV) == "1":
            webview.start(_smoke, (window,), gui="qt")
        else:
            webview.start(gui="qt")
    finally:
        server.should_exit = True
        thread.join(15)
    if thread.is_alive():
        print("终端服务没有在 15 秒内停止 / the kiosk server did not stop", file=sys.stderr)
        return 1
    return 0


def _has_display() -> bool:
    """Whether Qt can show a window here (Linux needs X11 or Wayland, or an explicit platform)."""
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(name) for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def _allow_root() -> None:
    """Add --no-sandbox to Qt WebEngine's Chromium flags when running as root.

    Chromium refuses to start its sandboxed renderers as root ("Running as root without
    --no-sandbox is not supported"), and a kiosk set up as a root service would show nothing.
    As a normal user the sandbox stays on. Flags the user set are kept.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    flags = os.environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    if "--no-sandbox" not in flags.split():
        os.environ["QTWEBENGINE_CHROMIUM_FLAGS"] = f"{flags} --no-sandbox".strip()


def _wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> bool:
    """Wait until uvicorn listens (its lifespan has run by then); False if it died or timed out."""
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            return False
        thread.join(0.05)
    return True


def _smoke(window: Window) -> None:
    """Test hook: once the page has loaded, print what it shows as one JSON line and close."""
    try:
        if not window.events.loaded.wait(30):
            print(json.dumps({"error": "the page did not load in 30 s"}), flush=True)
            return
        page = window.evaluate_js(
            "({title: document.title, path: location.pathname,"
            " heading: (document.querySelector('h1') || {}).textContent || null,"
            " webrtc: typeof RTCPeerConnection === 'function'"
            " && !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)})"
        )
        print(json.dumps({"window": window.title, **page}, ensure_ascii=False), flush=True)
    finally:
        window.destroy()
