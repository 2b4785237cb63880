#!/usr/bin/env node
// A real PouchDB peer (pouchdb-core 7.3.1, memory adapter) for the replication tests and the
// benchmark, driven by JSON commands: one per line on stdin, one answer per line on stdout
// ({"ok": result} or {"error": {"name", "status", "message"}}), until stdin closes.
// One command may also be given as JSON on argv (node pouchdb_peer.js '{"cmd":"replicate",...}').
//
// A database is named by a plain name (a PouchDB in memory, kept while the process lives) or by
// an http(s) URL (PouchDB's http adapter; credentials may be in the URL).
//
//   {"cmd": "bulk_docs", "db", "docs", "new_edits"?}  -> db.bulkDocs answer
//   {"cmd": "put", "db", "doc"}                       -> {"ok", "id", "rev"}
//   {"cmd": "get", "db", "id", "options"?}            -> db.get answer
//   {"cmd": "replicate", "from", "to", "batch_size"?, "batches_limit"?}
//        -> PouchDB's replication result plus "ms" (timed here), "requests", "body_bytes" and
//           "wire_bytes" (HTTP request bytes node sent: bodies, and bodies plus headers) and
//           "received_bytes" (response bodies as they came off the socket, gzipped or not)
//   {"cmd": "dump", "db"}  -> {id: {"winner", "deleted", "leaves": [[rev, deleted]], "body"}}
//   {"cmd": "info", "db"}  -> db.info()
//   {"cmd": "destroy", "db"}  -> forget an in-memory database (its memory is freed)
"use strict";

const http = require("http");
const path = require("path");
const readline = require("readline");
const { createRequire } = require("module");

const fromTools = createRequire(path.resolve(__dirname, "../../tools/pouchdb/package.json"));
const PouchDB = fromTools("pouchdb-core")
  .plugin(fromTools("pouchdb-adapter-memory"))
  .plugin(fromTools("pouchdb-adapter-http"))
  .plugin(fromTools("pouchdb-replication"));

// --- counting the HTTP traffic: every request PouchDB makes goes through http.request --------
const traffic = { requests: 0, body: 0, received: 0, sockets: new Set() };
const originalRequest = http.request;
http.request = function countedRequest(...args) {
  const req = originalRequest.apply(this, args);
  traffic.requests += 1;
  req.on("socket", (socket) => traffic.sockets.add(socket));
  req.on("response", (res) => {
    const push = res.push; // the HTTP parser pushes each body chunk as it came (gzip or not)
    res.push = function (chunk, ...rest) {
      if (chunk) traffic.received += chunk.length;
      return push.call(this, chunk, ...rest);
    };
  });
  for (const method of ["write", "end"]) {
    const original = req[method];
    req[method] = function (chunk, ...rest) {
      if (chunk && typeof chunk !== "function") traffic.body += Buffer.byteLength(chunk);
      return original.call(this, chunk, ...rest);
    };
  }
  return req;
};

function counters() {
  let wire = 0;
  for (const socket of traffic.sockets) wire += socket.bytesWritten;
  return { requests: traffic.requests, body: traffic.body, received: traffic.received, wire };
}

// --- databases -------------------------------------------------------------------------------
const local = new Map();

function open(name) {
  if (/^https?:\/\//.test(name)) return new PouchDB(name, { skip_setup: true });
  if (!local.has(name)) local.set(name, new PouchDB(name, { adapter: "memory" }));
  return local.get(name);
}

async function dump(db) {
  const out = {};
  const ids = (await db.changes({ style: "all_docs" })).results.map((row) => row.id);
  for (const id of ids) {
    const [row] = (await db.allDocs({ keys: [id] })).rows; // winner, deleted ones too
    const leaves = await db.get(id, { open_revs: "all", revs: true, attachments: true });
    const docs = leaves.filter((leaf) => leaf.ok).map((leaf) => leaf.ok);
    const winner = docs.find((doc) => doc._rev === row.value.rev);
    out[id] = {
      winner: row.value.rev,
      deleted: Boolean(row.value.deleted),
      leaves: docs
        .map((doc) => [doc._rev, Boolean(doc._deleted)])
        .sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      body: winner && normalise(winner),
    };
  }
  return out;
}

function normalise(doc) {
  const body = { ...doc };
  delete body._rev;
  delete body._revisions;
  if (body._attachments) {
    body._attachments = Object.fromEntries(
      Object.entries(body._attachments).map(([name, a]) => [
        name,
        { content_type: a.content_type, data: a.data },
      ]),
    );
  }
  return body;
}

async function replicate(command) {
  const before = counters();
  const began = process.hrtime.bigint();
  const result = await PouchDB.replicate(open(command.from), open(command.to), {
    batch_size: command.batch_size || 100,
    batches_limit: command.batches_limit || 10,
  });
  const ms = Number(process.hrtime.bigint() - began) / 1e6;
  const after = counters();
  return {
    ok: result.ok,
    status: result.status,
    docs_read: result.docs_read,
    docs_written: result.docs_written,
    doc_write_failures: result.doc_write_failures,
    errors: result.errors.map(String),
    last_seq: result.last_seq,
    ms,
    requests: after.requests - before.requests,
    body_bytes: after.body - before.body,
    wire_bytes: after.wire - before.wire,
    received_bytes: after.received - before.received,
  };
}

async function run(command) {
  switch (command.cmd) {
    case "bulk_docs":
      return open(command.db).bulkDocs(command.docs, { new_edits: command.new_edits !== false });
    case "put":
      return open(command.db).put(command.doc);
    case "get":
      return open(command.db).get(command.id, command.options || {});
    case "replicate":
      return replicate(command);
    case "dump":
      return dump(open(command.db));
    case "info":
      return open(command.db).info();
    case "destroy":
      await open(command.db).destroy();
      local.delete(command.db);
      return { ok: true };
    default:
      throw Object.assign(new Error(`unknown command ${command.cmd}`), { name: "bad_request" });
  }
}

async function answer(line) {
  try {
    return { ok: await run(JSON.parse(line)) };
  } catch (err) {
    return { error: { name: err.name, status: err.status, message: err.message || String(err) } };
  }
}

async function main() {
  if (process.argv[2]) {
    process.stdout.write(JSON.stringify(await answer(process.argv[2])) + "\n");
    return;
  }
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    if (line.trim()) process.stdout.write(JSON.stringify(await answer(line)) + "\n");
  }
}

main();
