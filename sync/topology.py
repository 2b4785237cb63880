"""The network's CouchDB topology: databases, ``_security``, design documents, replications.

DESIGN.md "Databases and who writes them" made concrete, by idempotent set-up functions (a
second run writes nothing, and never deletes a ``_replicator`` document):

* ``setup_district`` — on the district server: ``catalogue``, ``directory``, ``settings``
  (members: roles ``township`` and ``district``; only admins write, by ``validate_doc_update``)
  and ``district`` (role ``township:<t>`` writes its township's upward documents, role
  ``district`` — the district's own service centre — any township's).
* ``add_node`` — the district-side user a township node replicates as (roles ``township`` and
  ``township:<t>``).
* ``setup_township`` — on a township server: the read-only copies and ``township`` (server
  admins only), one ``village_<v>`` per village of the township in the replicated directory
  (members: role ``village:<v>``; its rule confines the kiosk), and the server-side continuous
  replications as ``_replicator`` documents with deterministic ids (``replication_documents``).
* ``enrol_kiosk`` / ``apply_revocations`` — the kiosk users of a township server.

Every replication names full URLs with credentials (CouchDB 3 wants URLs; pouchdb-server
crashes on URLs without credentials), and is written only once each filter's design document
exists on its source and each endpoint accepts the credentials: on pouchdb-server a continuous
replication whose peer answers 401, or whose filter is missing, kills the whole server
(its replicator daemon leaves the replication's ``error`` event unhandled). pouchdb-server also
refuses to edit a running replication's document (``Only the replicator can edit replication
documents that are in the triggered state``) and crashes when one is deleted, so a changed
replication (new credentials) needs a fresh development server; CouchDB 3 takes the edit.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import couchdb
from couchdb import http as couch_http

from core.cases import Origin
from core.errors import InvalidInput
from core.hierarchy import Level, level_of, township_of
from sync.couch import connect, couch_errors, ensure_database, get_document, save_document
from sync.design import DESIGN_ID, FILTER_SOURCES, DesignKind, design_document, filter_name
from sync.errors import CouchRejected, CouchUnavailable, DocNotFound, SyncError
from sync.remote import RemoteDatabase
from sync.replicator import Replication, replicate

__all__ = [
    "DISTRICT_DATABASES",
    "SHARED_DATABASES",
    "TopologyError",
    "EnrolmentRefused",
    "SetupReport",
    "KioskCredentials",
    "village_database",
    "node_username",
    "kiosk_username",
    "setup_district",
    "add_node",
    "setup_township",
    "township_villages",
    "replication_documents",
    "enrol_kiosk",
    "apply_revocations",
]

DISTRICT_DATABASES: dict[str, DesignKind] = {
    "catalogue": "readonly",
    "directory": "readonly",
    "settings": "readonly",
    "district": "district",
}
"""The district server's databases and the kind of design document each holds."""

SHARED_DATABASES = ("catalogue", "settings", "directory")
"""Written at the district only; townships hold read-only copies."""

TOWNSHIP_DB = "township"
DISTRICT_DB = "district"
USERS_DB = "_users"
REPLICATOR_DB = "_replicator"

_NOBODY: dict[str, list[str]] = {"names": [], "roles": []}


class TopologyError(SyncError):
    """The set-up cannot go on; the message says what to do."""


class EnrolmentRefused(SyncError):
    """A kiosk enrolment that the replicated directory does not allow."""


@dataclass
class SetupReport:
    """What a set-up run did; ``changes`` is empty when it found everything in place."""

    changes: list[str] = field(default_factory=list)
    unchanged: int = 0
    villages: list[str] = field(default_factory=list)

    def note(self, changed: bool, what: str) -> None:
        """Record one item as changed (with a description) or as already in place."""
        if changed:
            self.changes.append(what)
        else:
            self.unchanged += 1


@dataclass(frozen=True)
class KioskCredentials:
    """What an enrolled kiosk logs in with: its own CouchDB user for its village database."""

    username: str
    password: str
    village: str
    database: str


def _level(code: str) -> Level | None:
    """The level of a division code, or None if it is not one."""
    try:
        return level_of(code)
    except InvalidInput:
        return None


def village_database(village: str) -> str:
    """``village_<code>``: the database of one village on its township's server."""
    if _level(village) is not Level.VILLAGE:
        raise ValueError(f"not a village code: {village!r}")
    return f"village_{village}"


def node_username(township: str) -> str:
    """The district-side user a township node replicates as."""
    return f"township-{township}"


def kiosk_username(registration: str, instance: str) -> str:
    """The township-side user of one kiosk PC (a replaced PC is a new instance, a new user)."""
    return f"kiosk-{registration}-{instance}"


# --- small idempotent steps -----------------------------------------------------------------


def _server(server: couchdb.Server | str, timeout: float = 30.0) -> couchdb.Server:
    return server if isinstance(server, couchdb.Server) else connect(server, timeout)


def _server_url(server: couchdb.Server | str) -> str:
    """The server's URL with the credentials couchdb-python keeps apart."""
    if isinstance(server, str):
        return server
    url = server.resource.url
    credentials = server.resource.credentials
    if not credentials:
        return url
    user, password = (quote(part, safe="") for part in credentials)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


def _check_township(code: str) -> str:
    code = code.strip()
    if _level(code) is not Level.TOWNSHIP:
        raise ValueError(f"not a township code (9 digits + 000): {code!r}")
    return code


def _require_credentials(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TopologyError(f"{what} must be an http(s) URL: {redact(url)}")
    if not parts.username or parts.password is None:
        raise TopologyError(
            f"{what} must carry credentials (http://user:password@host:port/): replications "
            "name full URLs, and pouchdb-server crashes on a URL without them"
        )
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path + "/", "", ""))


def redact(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _db_url(base: str, name: str) -> str:
    return base.rstrip("/") + "/" + quote(name, safe="")


def _ensure_db(server: couchdb.Server, name: str, report: SetupReport) -> couchdb.Database:
    with couch_errors():
        exists = name in server
    db = ensure_database(server, name)
    report.note(not exists, f"database {name}")
    return db


def _ensure_security(db: couchdb.Database, members: list[str], report: SetupReport) -> None:
    wanted = {"admins": dict(_NOBODY), "members": {"names": [], "roles": members}}
    with couch_errors():
        current = dict(db.security or {})
        normal = {
            part: {
                "names": list((current.get(part) or {}).get("names") or []),
                "roles": list((current.get(part) or {}).get("roles") or []),
            }
            for part in ("admins", "members")
        }
        if normal != wanted:
            db.security = wanted
    report.note(normal != wanted, f"_security of {db.name}: members {members}")


def _ensure_design(
    db: couchdb.Database, kind: DesignKind, code: str | None, report: SetupReport
) -> None:
    wanted = design_document(kind, code)
    current = get_document(db, DESIGN_ID)
    same = current is not None and all(current.get(k) == v for k, v in wanted.items())
    same = same and set(current or {}) - {"_rev"} == set(wanted)
    if not same:
        save_document(db, wanted)
    report.note(not same, f"{DESIGN_ID} ({kind}) in {db.name}")


def _ensure_system_db(server: couchdb.Server, name: str, report: SetupReport) -> None:
    """``_users`` and ``_replicator`` (CouchDB 3 leaves them to the installer)."""
    with couch_errors():
        exists = name in server
    if not exists:
        ensure_database(server, name)
    report.note(not exists, f"database {name}")


def _new_password() -> str:
    return secrets.token_urlsafe(18)  # URL-safe: goes into replication URLs unquoted


def _put_user(
    server: couchdb.Server,
    name: str,
    roles: list[str],
    password: str | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Create or update ``_users`` document of ``name`` (password None: keep the old one)."""
    with couch_errors():
        users = server[USERS_DB]
    doc_id = f"org.couchdb.user:{name}"
    current = get_document(users, doc_id) or {}
    body = {**current, "_id": doc_id, "name": name, "type": "user", "roles": roles, **(extra or {})}
    if password is not None:
        for key in ("password_sha", "salt", "derived_key", "iterations", "password_scheme"):
            body.pop(key, None)
        body["password"] = password
    with couch_errors():
        users.save(body)


# --- district -------------------------------------------------------------------------------


def setup_district(server: couchdb.Server | str) -> SetupReport:
    """Create or check the district server's databases, ``_security`` and design documents."""
    couch = _server(server)
    report = SetupReport()
    _ensure_system_db(couch, USERS_DB, report)
    for name, kind in DISTRICT_DATABASES.items():
        db = _ensure_db(couch, name, report)
        _ensure_security(db, ["township", "district"], report)
        _ensure_design(db, kind, None, report)
    return report


def _put_user_roles_if_needed(couch: couchdb.Server, name: str, roles: list[str]) -> None:
    current = get_document(couch[USERS_DB], f"org.couchdb.user:{name}") or {}
    if current.get("roles") != roles:
        _put_user(couch, name, roles, None)


def add_node(server: couchdb.Server | str, township: str, *, reset: bool = False) -> str | None:
    """Create the district-side user of township node ``township``; return its new password,
    or None when it exists already (``reset``: give it a new password)."""
    township = _check_township(township)
    couch = _server(server)
    _ensure_system_db(couch, USERS_DB, SetupReport())
    name = node_username(township)
    exists = get_document(couch[USERS_DB], f"org.couchdb.user:{name}") is not None
    roles = ["township", f"township:{township}"]
    if exists and not reset:
        _put_user_roles_if_needed(couch, name, roles)  # a user made by hand gets its roles
        return None
    password = _new_password()
    _put_user(couch, name, roles, password)
    return password


# --- township -------------------------------------------------------------------------------


def township_villages(server: couchdb.Server | str, township: str) -> list[str]:
    """The village codes of ``township`` among the ``unit`` documents of the local directory."""
    couch = _server(server)
    with couch_errors():
        rows = couch["directory"].view(
            "_all_docs", startkey="unit:", endkey="unit:\ufff0", include_docs=True
        )
        docs = [dict(row.doc) for row in rows if row.doc is not None]
    villages = set()
    for doc in docs:
        code = doc.get("code")
        if doc.get("type") != "unit" or not isinstance(code, str):
            continue
        if _level(code) is Level.VILLAGE and township_of(code) == township:
            villages.add(code)
    return sorted(villages)


def replication_documents(
    township: str, villages: Iterable[str], district_url: str, self_url: str
) -> dict[str, dict[str, Any]]:
    """The ``_replicator`` documents of a township node, by their deterministic ids.

    ``district_url``: the district server with this node's credentials; ``self_url``: this
    server as it reaches itself, with admin credentials."""

    def rep(source: str, target: str, name: str, **params: str) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "source": source,
            "target": target,
            "continuous": True,
            "filter": filter_name(name),
        }
        if params:
            doc["query_params"] = params
        return doc

    def district(db: str) -> str:
        return _db_url(district_url, db)

    def local(db: str) -> str:
        return _db_url(self_url, db)

    t = township
    docs: dict[str, dict[str, Any]] = {
        f"sanji-{t}-catalogue-down": rep(district("catalogue"), local("catalogue"), "data"),
        f"sanji-{t}-settings-down": rep(district("settings"), local("settings"), "data"),
        f"sanji-{t}-directory-down": rep(
            district("directory"), local("directory"), "by_township", township=t
        ),
        f"sanji-{t}-up": rep(local(TOWNSHIP_DB), district(DISTRICT_DB), "upward", township=t),
        f"sanji-{t}-down": rep(
            district(DISTRICT_DB), local(TOWNSHIP_DB), "by_township", township=t
        ),
    }
    for v in sorted(villages):
        vdb = local(village_database(v))
        docs[f"sanji-{v}-up"] = rep(vdb, local(TOWNSHIP_DB), "from_village", village=v)
        docs[f"sanji-{v}-down"] = rep(local(TOWNSHIP_DB), vdb, "for_village", village=v)
        docs[f"sanji-{v}-catalogue"] = rep(local("catalogue"), vdb, "data")
        docs[f"sanji-{v}-settings"] = rep(local("settings"), vdb, "data")
        docs[f"sanji-{v}-directory"] = rep(local("directory"), vdb, "village_agents", village=v)
    return docs


_REPLICATION_FIELDS = ("source", "target", "continuous", "filter", "query_params")


def _ensure_replication(
    replicator: couchdb.Database, doc_id: str, wanted: dict[str, Any], report: SetupReport
) -> None:
    """Write a ``_replicator`` document unless it already says the same; never delete one."""
    current = get_document(replicator, doc_id)
    same = current is not None and all(
        current.get(key) == wanted.get(key) for key in _REPLICATION_FIELDS
    )
    if not same:
        body = {"_id": doc_id, **wanted}
        if current is not None:
            body["_rev"] = current["_rev"]
        try:
            with couch_errors():
                replicator.save(body)
        except CouchRejected as exc:
            raise TopologyError(
                f"cannot change replication {doc_id}: {exc.reason}. pouchdb-server lets only "
                "its replicator edit a running replication and crashes when one is deleted; "
                "start a fresh development server (CouchDB 3 accepts the change)"
            ) from exc
    report.note(not same, f"replication {doc_id}")


def _check_endpoint(url: str, name: str, needs_filters: bool) -> None:
    """The database answers these credentials and holds our design document's filters."""
    db = RemoteDatabase(url, name, timeout=30.0)
    where = f"{redact(url)}{name}"
    try:
        db.info()
    except CouchRejected as exc:
        raise TopologyError(
            f"{where} refuses the credentials ({exc.status} {exc.error}); for the district, "
            "create this node's user with `sanji district add-node --township <code>`"
        ) from exc
    except DocNotFound as exc:
        raise TopologyError(
            f"{where} does not exist: run `sanji district setup` (district databases) first"
        ) from exc
    except CouchUnavailable as exc:
        raise TopologyError(f"{where} is unreachable: {exc}") from exc
    if needs_filters:
        try:
            ddoc = db.get(DESIGN_ID)
        except (DocNotFound, CouchRejected) as exc:
            raise TopologyError(f"{where} has no readable {DESIGN_ID}: {exc}") from exc
        missing = set(FILTER_SOURCES) - set(ddoc.get("filters") or {})
        if missing:
            raise TopologyError(
                f"{where} lacks filters {sorted(missing)}: run `sanji district setup` again"
            )


def setup_township(
    server: couchdb.Server | str,
    township: str,
    district_url: str,
    *,
    self_url: str | None = None,
) -> SetupReport:
    """Create or check a township server's databases, security, design documents and
    replications; villages come from the township's part of the district's directory.

    ``server``: this server with admin rights; ``district_url``: the district server with this
    node's credentials (``sanji district add-node``); ``self_url``: this server as it reaches
    itself (default: ``server``'s URL), admin credentials included."""
    township = _check_township(township)
    couch = _server(server)
    district_url = _require_credentials(district_url, "the district URL")
    self_url = _require_credentials(self_url or _server_url(server), "this server's URL")
    report = SetupReport()

    # The district side first: every database answers this node and holds the filters.
    for name in (*SHARED_DATABASES, DISTRICT_DB):
        _check_endpoint(district_url, name, needs_filters=True)

    for name in (USERS_DB, REPLICATOR_DB):
        _ensure_system_db(couch, name, report)
    for name in (*SHARED_DATABASES, TOWNSHIP_DB):
        db = _ensure_db(couch, name, report)
        _ensure_security(db, ["_admin"], report)  # server admins only: no rule needed
        _ensure_design(db, "filters", None, report)

    # One pull of this township's part of the directory, so its villages are known now.
    pulled = replicate(
        Replication(
            RemoteDatabase(district_url, "directory", timeout=60.0),
            RemoteDatabase(couch, "directory"),
            filter=filter_name("by_township"),
            query_params={"township": township},
            batch_size=500,
        )
    )
    report.note(pulled.docs_written > 0, f"directory: {pulled.docs_written} document(s) pulled")

    villages = township_villages(couch, township)
    report.villages = villages
    for village in villages:
        db = _ensure_db(couch, village_database(village), report)
        _ensure_security(db, [f"village:{village}"], report)
        _ensure_design(db, "village", village, report)

    for name in (*SHARED_DATABASES, TOWNSHIP_DB, *map(village_database, villages)):
        _check_endpoint(self_url, name, needs_filters=True)

    with couch_errors():
        replicator = couch[REPLICATOR_DB]
    for doc_id, doc in replication_documents(township, villages, district_url, self_url).items():
        _ensure_replication(replicator, doc_id, doc, report)
    return report


# --- kiosks ---------------------------------------------------------------------------------


def enrol_kiosk(
    server: couchdb.Server | str,
    village: str,
    registration: str,
    instance: str,
    *,
    now: datetime | None = None,
) -> KioskCredentials:
    """Create the CouchDB user of one kiosk PC (role ``village:<v>``) on its township server and
    record an ``enrolment`` document in ``township``, which travels up to the district.

    The registration must be in the replicated directory, for this village, not revoked and
    not used by another PC (its ``enrolment`` names the instance; the same PC asking again
    gets a new password). The one-time code is checked by the enrolment endpoint first."""
    couch = _server(server)
    database = village_database(village)
    Origin(village, instance)  # raises ValueError on a malformed instance id
    township = township_of(village)
    with couch_errors():
        if database not in couch:
            raise TopologyError(
                f"{database} does not exist on this server: run `sanji township setup` after "
                "the village appears in the district's directory"
            )
        registration_doc = get_document(couch["directory"], f"kiosk_registration:{registration}")
    if registration_doc is None:
        raise EnrolmentRefused(f"registration {registration!r} is not in the directory")
    if registration_doc.get("village") != village:
        raise EnrolmentRefused(f"registration {registration!r} is not for village {village}")
    if registration_doc.get("revoked"):
        raise EnrolmentRefused(f"registration {registration!r} has been revoked")

    enrolment_id = f"enrolment:{registration}"
    enrolment = get_document(couch[TOWNSHIP_DB], enrolment_id)
    if enrolment is not None and enrolment.get("instance") != instance:
        raise EnrolmentRefused(
            f"registration {registration!r} was used by another PC already; issue a new one"
        )
    when = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    username = kiosk_username(registration, instance)
    password = _new_password()
    _put_user(
        couch,
        username,
        [f"village:{village}"],
        password,
        {
            "sanji_registration": registration,
            "sanji_village": village,
            "sanji_instance": instance,
            "sanji_enrolled_at": when,
        },
    )
    if enrolment is not None:  # the same PC asking again: new password, the record stands
        return KioskCredentials(username, password, village, database)
    save_document(
        couch[TOWNSHIP_DB],
        {
            "_id": enrolment_id,
            "type": "enrolment",
            "village": village,
            "township": township,
            "registration": registration,
            "instance": instance,
            "username": username,
            "enrolled_at": when,
        },
    )
    return KioskCredentials(username, password, village, database)


def apply_revocations(server: couchdb.Server | str) -> list[str]:
    """Delete the kiosk users whose registration the replicated directory marks revoked;
    return their names."""
    couch = _server(server)
    with couch_errors():
        rows = couch["directory"].view(
            "_all_docs",
            startkey="kiosk_registration:",
            endkey="kiosk_registration:\ufff0",
            include_docs=True,
        )
        revoked = {
            row.doc.get("registration") or row.id.partition(":")[2]
            for row in rows
            if row.doc is not None and row.doc.get("revoked")
        }
        users = couch[USERS_DB]
        kiosks = [
            dict(row.doc)
            for row in users.view(
                "_all_docs",
                startkey="org.couchdb.user:kiosk-",
                endkey="org.couchdb.user:kiosk-\ufff0",
                include_docs=True,
            )
            if row.doc is not None
        ]
    deleted = []
    for user in kiosks:
        if user.get("sanji_registration") in revoked:
            try:
                with couch_errors():
                    users.delete(user)
            except couch_http.ResourceNotFound:
                continue
            deleted.append(str(user.get("name")))
    return deleted
