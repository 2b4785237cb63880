"""Real servers for tests and benchmarks that run a small network: an ASGI app under uvicorn on
a free loopback port, a township's CouchDB joined to the district's, and the district's
documents such a network needs (a published demo catalogue item, a township staff account)."""

from __future__ import annotations

import threading
from typing import Any

import uvicorn
from argon2 import PasswordHasher

from central.demo import demo_items
from central.services.catalogue import initials
from sync.couch import connect, save_document
from sync.devserver import PouchServer, free_port
from sync.topology import SetupReport, add_node, node_username, setup_township

__all__ = [
    "join_district",
    "publish_item",
    "published_catalogue",
    "serve",
    "staff_account",
    "stop",
]


def serve(app: Any) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serve an ASGI app (with its lifespan) with uvicorn on a free loopback port, in a daemon
    thread; return the server, its thread and its URL once it answers."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("a server did not start")
        thread.join(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    """Stop a server started by ``serve``."""
    server.should_exit = True
    thread.join(10)


def published_catalogue(code: str) -> list[dict[str, Any]]:
    """The demo catalogue's item ``code`` and a manifest naming it, as the district publishes
    them (version 1)."""
    item = next(i for i in demo_items() if i["code"] == code)
    doc_id = f"catalogue_item:{code}:000001"
    return [
        {"_id": doc_id, "type": "catalogue_item", "version": 1, **item,
         "initials": initials(item["name"])},
        {"_id": "catalogue_manifest:000001", "type": "catalogue_manifest", "version": 1,
         "published_at": "2026-11-20T02:00:00+00:00",
         "items": [{"code": code, "name": item["name"], "kind": item["kind"], "doc": doc_id}]},
    ]  # fmt: skip


def publish_item(district_url: str, code: str) -> None:
    """Publish the demo item ``code`` in the district's `catalogue` database."""
    catalogue = connect(district_url)["catalogue"]
    for doc in published_catalogue(code):
        save_document(catalogue, doc)


def join_district(district: PouchServer, township_url: str, township: str) -> SetupReport:
    """Set up the township's CouchDB (``sync.topology.setup_township``) replicating with the
    district's through a node account of its own there."""
    password = add_node(district.url, township)
    upstream = f"http://{node_username(township)}:{password}@127.0.0.1:{district.port}/"
    return setup_township(township_url, township, upstream)


def staff_account(username: str, name: str, password: str, township: str) -> dict[str, Any]:
    """A township staff member's console account, as the district's directory holds it."""
    return {"_id": f"account:{username}", "type": "account", "username": username,
            "role": "township_staff", "unit": township, "township": township, "village": None,
            "display_name": name, "password_hash": PasswordHasher().hash(password),
            "disabled": False}  # fmt: skip
