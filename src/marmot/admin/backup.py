"""``marmot backup DIR`` and ``marmot restore DIR``: online copies of a node's databases, and putting
them back into a data directory a node then starts on.

**Backup** asks a running node (admin API, with the secret) for each database in turn
(``GET /admin/databases/{db}/backup``). The node makes the copy with ``VACUUM INTO`` inside one read
transaction while it keeps serving writes, so each copy is consistent *on its own* and holds its own
commit log (``__marmot_txn_log``), row versions (tombstones included) and digests, all at the same point:
the manifest records that point per database (``last_seq`` of the log, ``log_id``, schema version,
``taken_at_unix``) with the file's size and sha256. Databases are copied one after the other, so two
databases are not copied at the same instant. ``__marmot_system.db`` (pull cursors, id lease) and the
membership file are node state, not data: they are not backed up.

**Restore** writes the copies into the data directory of a node that is *not running* and holds no
database yet (``DataDirLock`` is taken for the duration, so a node cannot start on it meanwhile, and a
running node's directory is refused with its PID). It then starts as a member that catches up like any
node back from an absence; three things keep that from diverging or resurrecting rows:

* every restored file gets a fresh ``log_id`` (``snapshot.prepare``, as a received snapshot does): its
  log is a new log from the peers' point of view, so their pull cursors on the old node's log (which
  went on past the backup's ``last_seq``) are reset instead of skipping the entries written after the
  restore;
* the copies keep their applied markers and row versions, so catch-up applies only the transactions
  made after the backup, last-writer-wins: an update or delete made since then has a newer version
  and wins, on this node and in the row repair, in both directions;
* tombstones are kept only ``[replication] gc_max_retention_hours``: a copy older than that could hold
  a row whose deletion the cluster has forgotten, and the row repair would copy it back to the others.
  Such a copy is refused unless ``--allow-old`` says the whole cluster is being rebuilt from it.

Files are verified (size, sha256, ``PRAGMA quick_check``) when taken and again before they are
restored; nothing is renamed into place before its check passes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sqlite3
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from marmot import __version__
from marmot.admin.commands import EXIT_AUTH, EXIT_FAIL, EXIT_OK, _parser, base_url_of
from marmot.admin.operate import CommandFailed, _secret, call
from marmot.replication.catchup.snapshot import sha256_file

MANIFEST = "manifest.json"
FORMAT = "marmot-backup/1"
BACKUP_HEADER = "X-Marmot-Backup"
CHUNK = 1 << 20
# files in a data directory that mean "a node has lived here": restore refuses to mix with them
NODE_FILES = ("membership.msgpack",)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def quick_check(path: Path) -> str:
    """``PRAGMA quick_check`` of a SQLite file, read-only: ``"ok"`` or SQLite's complaint."""
    try:
        conn = sqlite3.connect(f"file:{urllib.parse.quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error as err:
        return str(err)
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as err:
        return str(err)
    finally:
        conn.close()
    return "; ".join(str(r[0]) for r in rows[:5])


# ----------------------------------------------------------------------------------------------------------
# backup


def download(args: argparse.Namespace, db: str, dest: Path) -> dict[str, Any] | None:
    """Stream one database's copy into ``dest``; its manifest entry (checked against what arrived), or
    None when the node no longer has the database (dropped since it was listed)."""
    secret = _secret(args)
    url = f"{base_url_of(args.address)}/admin/databases/{urllib.parse.quote(db, safe='')}/backup"
    req = urllib.request.Request(url, headers={"X-Marmot-Secret": secret} if secret else {})
    h = hashlib.sha256()
    size = 0
    try:
        with urllib.request.urlopen(req, timeout=args.timeout) as resp, open(dest, "wb") as out:
            meta = json.loads(resp.headers.get(BACKUP_HEADER) or "{}")
            while block := resp.read(CHUNK):
                out.write(block)
                h.update(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())
    except urllib.error.HTTPError as err:
        body = err.read().decode("utf-8", "replace")
        err.close()
        try:
            reason = str(json.loads(body).get("error", body))
        except (ValueError, AttributeError):
            reason = body[:300]
        if err.code == 404 and reason.startswith("unknown database"):
            return None  # dropped since it was listed (a 404 "no such route" is a node without backups)
        code = EXIT_AUTH if err.code == 401 else EXIT_FAIL
        raise CommandFailed(f"backup of {db!r} refused ({err.code}): {reason}", code) from None
    except (urllib.error.URLError, OSError) as err:
        raise CommandFailed(f"backup of {db!r} failed: {err}") from None
    if size != meta.get("size") or h.hexdigest() != meta.get("sha256"):
        raise CommandFailed(
            f"backup of {db!r} arrived damaged: {size} bytes sha256 {h.hexdigest()[:12]}, the node sent "
            f"{meta.get('size')} bytes sha256 {str(meta.get('sha256'))[:12]}"
        )
    check = quick_check(dest)
    if check != "ok":
        raise CommandFailed(f"backup of {db!r} fails SQLite's quick_check: {check}")
    return {
        "file": f"{db}.db",
        "size": size,
        "sha256": h.hexdigest(),
        "log_id": meta.get("log_id", ""),
        "last_seq": int(meta.get("last_seq") or 0),
        "schema_version": int(meta.get("schema_version") or 0),
        "taken_at_unix": float(meta.get("taken_at_unix") or time.time()),
    }


def take_backup(args: argparse.Namespace) -> dict[str, Any]:
    """Copy every database (or those named) of the node at ``args.address`` into ``args.dir``."""
    target = Path(args.dir)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CommandFailed(f"{target} exists and is not an empty directory: back up into a new one")
    listing = call(args, "/admin/databases")
    names = sorted(str(d["name"]) for d in listing.get("databases") or [] if d.get("name"))
    if args.database:
        missing = sorted(set(args.database) - set(names))
        if missing:
            raise CommandFailed(f"node {listing.get('node_id', '?')} has no database {', '.join(missing)}")
        names = sorted(set(args.database))
    target.mkdir(parents=True, exist_ok=True)
    started = time.time()
    databases: dict[str, Any] = {}
    skipped: list[str] = []
    for db in names:
        part = target / f"{db}.db.part"
        try:
            entry = download(args, db, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        if entry is None:
            part.unlink(missing_ok=True)
            skipped.append(db)
            continue
        os.replace(part, target / entry["file"])
        databases[db] = entry
    manifest = {
        "format": FORMAT,
        "marmot_version": __version__,
        "source": base_url_of(args.address),
        "node_id": listing.get("node_id"),
        "started_at_unix": started,
        "finished_at_unix": time.time(),
        "databases": databases,
        "dropped_while_copying": skipped,
    }
    tmp = target / (MANIFEST + ".part")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target / MANIFEST)
    _fsync_dir(target)
    return manifest


def main_backup(argv: list[str] | None = None) -> int:
    """``marmot backup DIR``: exit 0 with every database copied and verified, 1 on any failure (the
    partial directory is left for inspection, without a manifest), 2 on a refused secret."""
    p = _parser(
        "marmot backup",
        "Copy every database of a running node into DIR (consistent per database, taken while the node "
        "serves writes), with a manifest of log positions and checksums.",
    )
    p.add_argument("dir", metavar="DIR", help="a new or empty directory to write the backup into")
    p.add_argument(
        "--database", "-database", action="append", metavar="DB", help="only this one (repeatable)"
    )
    p.set_defaults(timeout=600.0)
    args = p.parse_args(argv)
    try:
        manifest = take_backup(args)
    except CommandFailed as err:
        print(f"marmot: {err}", file=sys.stderr)
        return err.code
    if args.json:
        print(json.dumps(manifest, indent=2))
        return EXIT_OK
    for db, e in sorted(manifest["databases"].items()):
        print(
            f"{db}: {e['size']} bytes, log {e['log_id']} up to seq {e['last_seq']}, sha256 {e['sha256'][:16]}"
        )
    for db in manifest["dropped_while_copying"]:
        print(f"{db}: dropped on the node while the backup ran; not copied")
    print(f"backup of node {manifest['node_id']}: {len(manifest['databases'])} database(s) in {args.dir}")
    return EXIT_OK


# ----------------------------------------------------------------------------------------------------------
# restore


def read_manifest(source: Path) -> dict[str, Any]:
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandFailed(f"{path} not found: not a finished marmot backup") from None
    except (OSError, ValueError) as err:
        raise CommandFailed(f"cannot read {path}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CommandFailed(f"{path} is not a {FORMAT} manifest")
    return manifest


def check_entries(entries: dict[str, Any]) -> None:
    """Every entry names a valid database and its own file: a manifest cannot make restore read outside
    the backup or write outside the data directory."""
    from marmot.storage.databases import InvalidDatabaseName, validate_name

    for db, e in sorted(entries.items()):
        try:
            validate_name(db)
        except InvalidDatabaseName:
            raise CommandFailed(f"the manifest names an invalid database {db!r}") from None
        if not isinstance(e, dict) or e.get("file") != f"{db}.db":
            raise CommandFailed(f"the manifest entry of {db!r} does not name the file {db}.db")


def verify_files(source: Path, entries: dict[str, Any]) -> None:
    """Every file of the backup is there, of the recorded size and sha256, and passes quick_check."""
    for db, e in sorted(entries.items()):
        path = source / str(e["file"])
        if not path.is_file():
            raise CommandFailed(f"backup file {path} of database {db!r} is missing")
        if path.stat().st_size != e["size"] or sha256_file(path) != e["sha256"]:
            raise CommandFailed(f"backup file {path} does not match its manifest (size or sha256)")
        check = quick_check(path)
        if check != "ok":
            raise CommandFailed(f"backup file {path} fails SQLite's quick_check: {check}")


def occupied(data_dir: Path) -> list[str]:
    """What in ``data_dir`` says a node has data or state there (database files, the membership file)."""
    found = sorted(p.name for p in data_dir.glob("*.db")) if data_dir.is_dir() else []
    return found + [n for n in NODE_FILES if (data_dir / n).exists()]


def resolve_target(args: argparse.Namespace) -> tuple[Path, float]:
    """(data directory, tombstone retention in hours: 0 = forever) from ``--data-dir`` / ``--config``."""
    from marmot.config import ConfigError, load_config

    overrides: dict[str, object] = {"data_dir": args.data_dir} if args.data_dir else {}
    if not args.config and not args.data_dir:
        raise CommandFailed("say where to restore: --config PATH (the node's config) or --data-dir DIR", 2)
    try:
        cfg = load_config(args.config, overrides)
    except (ConfigError, OSError) as err:
        raise CommandFailed(f"invalid configuration: {err}", 2) from None
    return Path(cfg.data_dir).absolute(), float(cfg.replication.gc_max_retention_hours)


def restore(args: argparse.Namespace) -> list[str]:
    """Put the backup at ``args.dir`` into the target data directory; the databases restored."""
    from marmot.replication.catchup.snapshot import prepare
    from marmot.startup import DataDirLock, StartupError

    source = Path(args.dir)
    manifest = read_manifest(source)
    entries: dict[str, Any] = dict(manifest.get("databases") or {})
    if args.database:
        unknown = sorted(set(args.database) - set(entries))
        if unknown:
            raise CommandFailed(f"the backup holds no database {', '.join(unknown)}")
        entries = {db: e for db, e in entries.items() if db in args.database}
    check_entries(entries)
    data_dir, retention_h = resolve_target(args)
    oldest = min((float(e.get("taken_at_unix") or 0) for e in entries.values()), default=time.time())
    age_h = (time.time() - oldest) / 3600
    if retention_h > 0 and age_h > retention_h and not args.allow_old:
        raise CommandFailed(
            f"the backup is {age_h:.1f} h old, older than gc_max_retention_hours = {retention_h:g}: the "
            "cluster may have forgotten deletions made since (their tombstones are collected), and a "
            "node started on this copy would copy such rows back to every node. Start the node empty "
            "instead (it takes a snapshot from a peer), or pass --allow-old when the whole cluster is "
            "rebuilt from this backup"
        )
    verify_files(source, entries)
    try:
        lock = DataDirLock.acquire(data_dir)  # refuses a directory a node is running on (its PID)
    except StartupError as err:
        raise CommandFailed(f"cannot restore into {data_dir}: {err}") from None
    try:
        there = occupied(data_dir)
        if there:
            raise CommandFailed(
                f"data directory {data_dir} already holds {', '.join(there)}: restore only into a new or "
                "empty data directory (stop the node and move its files aside first)"
            )
        for db, e in sorted(entries.items()):
            tmp = data_dir / f"{db}.db.restore-{secrets.token_hex(6)}"
            try:
                with open(source / str(e["file"]), "rb") as src, open(tmp, "wb") as out:
                    while block := src.read(CHUNK):
                        out.write(block)
                    out.flush()
                    os.fsync(out.fileno())
                prepare(tmp)  # a fresh log_id: see the module docstring
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, data_dir / f"{db}.db")
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
        _fsync_dir(data_dir)
    finally:
        lock.release()
    return sorted(entries)


def main_restore(argv: list[str] | None = None) -> int:
    """``marmot restore DIR``: exit 0 with every database in place, 1 when refused or damaged, 2 on bad
    usage."""
    p = argparse.ArgumentParser(
        prog="marmot restore",
        description="Put a 'marmot backup' into the data directory of a stopped node that holds no "
        "database yet; started, the node catches up with its peers from the backup's positions.",
    )
    p.add_argument("dir", metavar="DIR", help="the backup directory (with manifest.json)")
    p.add_argument(
        "--config", "-config", metavar="PATH", help="the node's config (its data_dir, GC retention)"
    )
    p.add_argument(
        "--data-dir", "-data-dir", metavar="DIR", help="the data directory (overrides the config's)"
    )
    p.add_argument(
        "--database", "-database", action="append", metavar="DB", help="only this one (repeatable)"
    )
    p.add_argument(
        "--allow-old",
        action="store_true",
        help="restore a backup older than gc_max_retention_hours (only when the whole cluster is rebuilt from it)",
    )
    args = p.parse_args(argv)
    try:
        restored = restore(args)
    except CommandFailed as err:
        print(f"marmot: {err}", file=sys.stderr)
        return err.code
    for db in restored:
        print(f"{db}: restored")
    print(
        f"{len(restored)} database(s) restored; start the node on this data directory: it catches up "
        "with its peers from the backup's positions (or, alone, serves the backup as it is)"
    )
    return EXIT_OK


__all__ = ["main_backup", "main_restore", "restore", "take_backup"]
