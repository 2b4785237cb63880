// pouchdb-server 4.2 (pouchdb-validation) overwrites the _revisions of every incoming
// document with the stored document's before running validate_doc_update, so a replicated
// *update* (new_edits=false) into a database with a validation function is acknowledged and
// silently dropped. Apache CouchDB does not do this. Keep the incoming history when there is
// one. Idempotent; run by scripts/setup.sh after `npm ci`.
"use strict";
const fs = require("fs");
const path = require("path");

const file = path.join(__dirname, "node_modules", "pouchdb-validation", "lib", "index.js");
const broken = "  newDoc._revisions = (oldDoc || {})._revisions;";
const fixed = "  if (!newDoc._revisions) { newDoc._revisions = (oldDoc || {})._revisions; } // sanji fix";
const source = fs.readFileSync(file, "utf8");
if (source.includes(fixed)) {
  process.exit(0);
}
if (!source.includes(broken)) {
  console.error(`fix-validation: the expected line is not in ${file}; check the pouchdb-validation version`);
  process.exit(1);
}
fs.writeFileSync(file, source.replace(broken, fixed));
console.error("fix-validation: patched pouchdb-validation to keep replicated revision histories");
