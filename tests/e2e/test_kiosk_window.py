"""The kiosk's real pywebview (Qt WebEngine) window, opened offscreen by `sanji kiosk`.

``webview.start`` runs once per process, so each test runs the real command in a child. With
``SANJI_WINDOW_SMOKE=1`` the window prints what its page shows (one JSON line) once loaded and
closes itself. pywebview and Qt come with the ``kiosk`` extra, which ``./test`` installs: a
missing one fails here, it is never skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SANJI = Path(sys.executable).parent / "sanji"


def _kiosk(data: Path, env: dict[str, str]) -> str:
    """Run `sanji kiosk --data DATA` to its end with ``env`` added; its stdout."""
    result = subprocess.run(
        [str(SANJI), "kiosk", "--data", str(data), "--sync-interval", "0"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_window_shows_the_enrolment_page_of_a_new_kiosk(tmp_path: Path) -> None:
    data = tmp_path / "kiosk"
    out = _kiosk(data, {"QT_QPA_PLATFORM": "offscreen", "SANJI_WINDOW_SMOKE": "1"})

    pages = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert pages == [
        {
            "window": "三级四务 · 村便民服务站",
            "title": "三级四务 · 村便民服务站",
            "path": "/enrol",
            "heading": "终端启用",
            "webrtc": True,  # video calls (issue 7) have WebRTC and getUserMedia in the window
        }
    ], out
    # Closing the window stopped the server and its lifespan closed the store: SQLite removes
    # the write-ahead log on the last close (a killed kiosk leaves it behind).
    assert (data / "store.sqlite3").exists()
    assert not (data / "store.sqlite3-wal").exists()


def test_without_pywebview_the_kiosk_says_what_to_install(tmp_path: Path) -> None:
    block = (
        "import sys; sys.modules['webview'] = None; import sanji_cli; "
        f"sys.exit(sanji_cli.main(['kiosk', '--data', {str(tmp_path)!r}]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", block], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "sanji[kiosk]" in result.stderr and "--headless" in result.stderr, result.stderr
