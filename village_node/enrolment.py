"""Enrolment: present the one-time code to the township node, save the credentials, first pull."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from core.cases import new_instance_id
from core.errors import InvalidInput
from core.hierarchy import Level, level_of, township_of
from sync.errors import CouchRejected, SyncError
from sync.remote import RemoteDatabase
from sync.replicator import Replication, ReplicationResult, replicate
from sync.store import SQLiteStore
from village_node.errors import EnrolmentFailed
from village_node.settings import Enrolment, Settings, save_enrolment

__all__ = ["ENROL_PATH", "KIOSK_LOCAL", "instance_id", "enrol", "first_pull"]

log = logging.getLogger(__name__)

ENROL_PATH = "/api/v1/kiosk/enrol"
KIOSK_LOCAL = "_local/kiosk"
"""The store's own record of this PC: its instance id (kept across re-enrolments)."""

_STATUS_MESSAGES = {
    400: "启用信息有误, 请检查村(社区)代码和启用码",
    403: "启用码无效或已被吊销, 请联系区级管理员",
    404: "镇街服务中心不认识这个村(社区)或启用码, 请检查后重试",
    409: "这个启用码已被其他电脑使用, 请联系区级管理员重新发放",
    429: "尝试次数过多, 请稍后再试",
}


def instance_id(store: SQLiteStore) -> str:
    """This PC's instance id, minted once and kept in the store's ``_local/kiosk``."""
    local = store.get_local(KIOSK_LOCAL)
    if local and local.get("instance"):
        return str(local["instance"])
    instance = new_instance_id()
    store.put_local({**(local or {"_id": KIOSK_LOCAL}), "instance": instance})
    return instance


def _check_village(village: str) -> str:
    village = village.strip()
    try:
        level = level_of(village)
    except InvalidInput:
        level = None
    if level is not Level.VILLAGE:
        raise EnrolmentFailed("村(社区)代码应为12位区划代码, 例如 500109110201")
    return village


def _post(url: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """POST JSON; return the answer, or raise EnrolmentFailed with a Chinese message."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return dict(json.loads(answer.read() or b"{}"))
    except urllib.error.HTTPError as exc:
        try:
            message = str(json.loads(exc.read() or b"{}").get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        default = _STATUS_MESSAGES.get(exc.code, f"镇街服务中心返回错误 {exc.code}, 请稍后再试")
        raise EnrolmentFailed(message or default) from exc
    except OSError as exc:  # URLError, refused, reset, timed out
        raise EnrolmentFailed("无法连接镇街服务中心, 请检查网络和服务中心地址后重试") from exc
    except ValueError as exc:
        raise EnrolmentFailed("镇街服务中心的答复无法识别, 请检查服务中心地址") from exc


def enrol(
    settings: Settings, store: SQLiteStore, township_url: str, village: str, code: str
) -> Enrolment:
    """Ask the township to enrol this PC with ``code``; save and return the credentials."""
    village = _check_village(village)
    township_url = township_url.strip().rstrip("/")
    if not township_url.startswith(("http://", "https://")):
        raise EnrolmentFailed("镇街服务中心地址应以 http:// 或 https:// 开头")
    code = code.strip().upper()
    if not code:
        raise EnrolmentFailed("请输入启用码")
    instance = instance_id(store)
    answer = _post(
        township_url + ENROL_PATH,
        {"village": village, "code": code, "instance": instance},
        settings.enrol_timeout,
    )
    try:
        enrolment = Enrolment(
            village=str(answer.get("village") or village),
            township=str(answer.get("township") or township_of(village)),
            township_url=township_url,
            couch_url=str(answer["couch_url"]),
            database=str(answer["database"]),
            username=str(answer["username"]),
            password=str(answer["password"]),
            instance=str(answer.get("instance") or instance),
            registration=str(answer.get("registration") or ""),
        )
    except KeyError as exc:
        raise EnrolmentFailed("镇街服务中心的答复缺少账号信息, 请联系管理员") from exc
    if enrolment.village != village:
        raise EnrolmentFailed("镇街服务中心返回的村(社区)与输入的不一致, 请联系管理员")
    save_enrolment(settings, enrolment)
    return enrolment


def first_pull(settings: Settings, store: SQLiteStore, enrolment: Enrolment) -> ReplicationResult:
    """Copy the village database into the store (catalogue, agents, this village's cases)."""
    remote = RemoteDatabase(
        enrolment.database_url(), enrolment.database, timeout=settings.couch_timeout
    )
    try:
        return replicate(Replication(remote, store, batch_size=500))
    except CouchRejected as exc:
        raise EnrolmentFailed("镇街服务中心拒绝了本终端的账号, 请重新启用") from exc
    except SyncError as exc:
        log.warning("first pull failed: %s", exc)
        raise EnrolmentFailed("已启用, 但下载村(社区)数据未完成; 联网后请点“同步”继续") from exc
