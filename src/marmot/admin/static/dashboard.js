// Marmot dashboard: polls this node's admin JSON routes and renders them. Plain JS, no dependencies.
//
// The cluster secret is typed into the sign-in form, checked against GET /admin/cluster/members, kept in
// this tab's sessionStorage (gone when the tab closes; never in a URL or a cookie) and sent in the
// X-Marmot-Secret header of every request, as the API expects. Everything from the node is inserted as
// text (textContent), never as markup, and the page's Content-Security-Policy allows no inline script.
"use strict";

const SECRET_KEY = "marmot.clusterSecret";
const POLL_MS = 2000;
// Transaction ids are 64-bit: quote them before JSON.parse so they are not rounded to a double.
const BIG_ID = /("(?:txn_id|owner)"\s*:\s*)(\d{16,})/g;

let pollTimer = null;
let polling = false;

function $(id) {
  return document.getElementById(id);
}

function secret() {
  return sessionStorage.getItem(SECRET_KEY);
}

async function api(path, key) {
  const headers = { "X-Marmot-Secret": key === undefined ? secret() || "" : key };
  const resp = await fetch(path, { headers, cache: "no-store", credentials: "omit", redirect: "error" });
  const text = await resp.text();
  let body = null;
  try {
    body = JSON.parse(text.replace(BIG_ID, '$1"$2"'));
  } catch (e) {
    body = { error: text.slice(0, 200) };
  }
  return { status: resp.status, body };
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fillTable(id, rows, empty) {
  const body = $(id).tBodies[0];
  const cols = $(id).tHead.rows[0].cells.length;
  const out = [];
  for (const r of rows) {
    const tr = document.createElement("tr");
    for (const [k, v] of Object.entries(r.data || {})) tr.dataset[k] = v;
    for (const c of r.cells) tr.appendChild(c instanceof Node ? c : el("td", c));
    out.push(tr);
  }
  if (!out.length) {
    const tr = document.createElement("tr");
    const td = el("td", empty, "empty");
    td.colSpan = cols;
    tr.appendChild(td);
    out.push(tr);
  }
  body.replaceChildren(...out);
}

function ago(ms) {
  if (ms === null || ms === undefined) return "-";
  if (ms === 0) return "now";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function seconds(s) {
  return s === null || s === undefined ? "-" : `${Number(s).toFixed(1)} s`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

function stateCell(state) {
  const td = el("td", state, `state state-${state}`);
  return td;
}

// -- sign-in ----------------------------------------------------------------------------------------

function showSignIn(message) {
  stopPolling();
  $("dashboard").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
  $("node-line").textContent = "";
  $("updated").textContent = "";
}

function showDashboard() {
  $("sign-in").hidden = true;
  $("sign-in-error").textContent = "";
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  startPolling();
}

async function signIn(event) {
  event.preventDefault();
  const typed = $("secret").value;
  $("sign-in-error").textContent = "";
  let r;
  try {
    r = await api("/admin/cluster/members", typed);
  } catch (e) {
    $("sign-in-error").textContent = `Cannot reach the node: ${e.message}`;
    return;
  }
  if (r.status === 401) {
    $("sign-in-error").textContent = `Refused: the node did not accept this secret (${r.body.error || "401"}).`;
    $("secret").value = "";
    return;
  }
  if (r.status !== 200) {
    $("sign-in-error").textContent = `The node answered ${r.status}: ${r.body.error || ""}`;
    return;
  }
  sessionStorage.setItem(SECRET_KEY, typed);
  $("secret").value = "";
  showDashboard();
}

function signOut() {
  sessionStorage.removeItem(SECRET_KEY);
  showSignIn("Signed out.");
}

// -- polling ----------------------------------------------------------------------------------------

function startPolling() {
  if (pollTimer === null && !polling) poll();
}

function stopPolling() {
  if (pollTimer !== null) clearTimeout(pollTimer);
  pollTimer = null;
}

async function poll() {
  pollTimer = null;
  polling = true;
  try {
    await refresh();
    $("poll-error").textContent = "";
  } catch (e) {
    if (e.signedOut) return;
    $("poll-error").textContent = `Last refresh failed: ${e.message}`;
  } finally {
    polling = false;
  }
  if (secret() !== null && !$("dashboard").hidden) pollTimer = setTimeout(poll, POLL_MS);
}

async function get(path) {
  const r = await api(path);
  if (r.status === 401) {
    sessionStorage.removeItem(SECRET_KEY);
    showSignIn("The node no longer accepts this secret: sign in again.");
    const err = new Error("signed out");
    err.signedOut = true;
    throw err;
  }
  return r;
}

async function refresh() {
  const [members, replication, databases] = await Promise.all([
    get("/admin/cluster/members"),
    get("/admin/cluster/replication"),
    get("/admin/databases"),
  ]);
  if (members.status !== 200) throw new Error(`members: ${members.status} ${members.body.error || ""}`);
  renderMembers(members.body);
  if (replication.status === 200) renderReplication(replication.body);
  const dbs = databases.status === 200 ? databases.body.databases : [];
  const perDb = await Promise.all(
    dbs.map(async (db) => {
      const name = encodeURIComponent(db.name);
      const [pending, intents, schema] = await Promise.all([
        get(`/admin/${name}/metadata/transactions/pending`),
        get(`/admin/${name}/metadata/intents`),
        get(`/admin/${name}/metadata/schema/version`),
      ]);
      return {
        db,
        pending: pending.status === 200 ? pending.body.transactions : [],
        intents: intents.status === 200 ? intents.body.intents : [],
        ddlLock: intents.status === 200 ? intents.body.ddl_lock : null,
        schema: schema.status === 200 ? schema.body.nodes : {},
      };
    }),
  );
  renderDatabases(perDb);
  await Promise.all([...document.querySelectorAll("section[data-route]")].map(refreshOptional));
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// -- sections ---------------------------------------------------------------------------------------

function renderMembers(doc) {
  $("node-line").textContent = `node ${doc.node_id}`;
  const q = doc.has_quorum ? "quorum OK" : "NO QUORUM";
  $("quorum").textContent =
    `${doc.alive} of ${doc.total} members alive, ${doc.quorum_size} needed: ${q}`;
  $("quorum").className = doc.has_quorum ? "ok" : "bad";
  fillTable(
    "members",
    doc.members.map((m) => ({
      data: { nodeId: m.node_id, state: m.state },
      cells: [
        m.node_id === doc.node_id ? `${m.node_id} (this node)` : m.node_id,
        stateCell(m.state),
        el("td", m.address, "address"),
        el("td", m.mysql_address || "-", "mysql-address"),
        m.incarnation,
        ago(m.last_seen_ms_ago),
      ],
    })),
    "no members",
  );
}

function renderReplication(doc) {
  const ae = doc.anti_entropy || {};
  $("anti-entropy").textContent = ae.enabled
    ? `anti-entropy every ${ae.interval_seconds} s; rounds ${ae.rounds ?? 0}, failed ${ae.failed ?? 0}`
    : "anti-entropy is disabled on this node";
  const lag = doc.lag || [];
  fillTable(
    "lag",
    lag.map((e) => ({
      data: { peer: e.peer, database: e.database },
      cells: [
        e.peer,
        e.database,
        e.behind_txns,
        seconds(e.lag_seconds),
        e.last_round_unix ? new Date(e.last_round_unix * 1000).toLocaleTimeString() : "-",
        (e.divergent_tables || []).join(", ") || "-",
      ],
    })),
    "no anti-entropy round yet",
  );
  const divergent = [];
  for (const e of lag) {
    for (const t of e.divergent_tables || []) {
      divergent.push(el("li", `${e.database}.${t}: differs from node ${e.peer} (run marmot verify)`, "bad"));
    }
  }
  if (!divergent.length) divergent.push(el("li", "none", "ok"));
  $("divergent").replaceChildren(...divergent);
}

function renderDatabases(perDb) {
  fillTable(
    "databases",
    perDb.map((d) => ({
      data: { database: d.db.name },
      cells: [
        d.db.name,
        d.db.tables,
        bytes(d.db.size_bytes),
        Object.entries(d.schema)
          .map(([n, v]) => `${n}: ${v}`)
          .join(", ") || "-",
        d.pending.length,
        d.intents.length,
        d.ddlLock ? `txn ${d.ddlLock.txn_id}` : "-",
      ],
    })),
    "no databases",
  );
  const txns = perDb.flatMap((d) => d.pending);
  fillTable(
    "transactions",
    txns.map((t) => ({
      data: { txnId: t.txn_id },
      cells: [
        t.txn_id,
        t.database,
        t.kind,
        t.state,
        t.coordinator,
        seconds(t.waiting_seconds),
        t.rows,
        (t.tables || []).join(", ") || "-",
      ],
    })),
    "none",
  );
  const intents = perDb.flatMap((d) => d.intents.map((i) => ({ ...i, database: d.db.name })));
  fillTable(
    "intents",
    intents.map((i) => ({
      data: { txnId: i.txn_id },
      cells: [i.database, i.table ?? "-", i.key, i.txn_id, i.coordinator ?? "-", seconds(i.waiting_seconds)],
    })),
    "none",
  );
  const locks = perDb.filter((d) => d.ddlLock).map((d) => ({ ...d.ddlLock, database: d.db.name }));
  fillTable(
    "ddl-locks",
    locks.map((l) => ({
      data: { txnId: l.txn_id },
      cells: [
        l.database,
        l.txn_id,
        l.tables ? l.tables.join(", ") : "whole database",
        l.coordinator ?? "-",
        seconds(l.waiting_seconds),
        (l.statements || []).join("; ") || "-",
      ],
    })),
    "none",
  );
}

// Sections whose route another feature provides (replicas, CDC): shown when the route answers, hidden
// while it answers 404 (a node without that feature).
async function refreshOptional(section) {
  const r = await get(section.dataset.route);
  if (r.status === 404) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const box = section.querySelector(".generic");
  box.replaceChildren(...renderGeneric(r.status === 200 ? r.body : { error: `${r.status} ${r.body.error || ""}` }));
}

function renderGeneric(doc) {
  const out = [];
  const facts = document.createElement("dl");
  for (const [k, v] of Object.entries(doc || {})) {
    if (k === "node_id") continue; // the header says which node answers
    if (Array.isArray(v) && !v.length) {
      facts.appendChild(el("dt", k));
      facts.appendChild(el("dd", "none"));
    } else if (Array.isArray(v) && v.every((x) => x && typeof x === "object" && !Array.isArray(x))) {
      out.push(el("h3", k));
      out.push(objectTable(v));
    } else {
      facts.appendChild(el("dt", k));
      facts.appendChild(el("dd", typeof v === "object" && v !== null ? JSON.stringify(v) : v));
    }
  }
  if (facts.children.length) out.unshift(facts);
  return out;
}

function objectTable(items) {
  const cols = [...new Set(items.flatMap((x) => Object.keys(x)))];
  const table = el("table");
  const head = table.createTHead().insertRow();
  for (const c of cols) head.appendChild(el("th", c));
  const body = table.createTBody();
  for (const x of items) {
    const tr = body.insertRow();
    for (const c of cols) {
      const v = x[c];
      tr.appendChild(el("td", v === undefined ? "" : typeof v === "object" && v !== null ? JSON.stringify(v) : v));
    }
  }
  return table;
}

// -- start --------------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  if (secret() !== null) showDashboard();
  else showSignIn("");
});
