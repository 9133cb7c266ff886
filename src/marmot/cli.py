"""``marmot`` command line: start a node (foreground or daemon) on a TOML config.

Flags follow upstream (Go style single dash: ``-config``, ``-daemon``, ``-pid-file``) and also accept the
GNU double-dash spelling; flags override the file, the environment overrides the cluster secret.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from marmot import __version__
from marmot.config import Config, ConfigError, load_config
from marmot.daemon import Readiness, daemonize
from marmot.logsetup import configure_logging
from marmot.startup import PidFile, StartupError, exposure_warnings, raise_fd_limit


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="marmot",
        description="Marmot: leaderless, distributed SQLite replication server speaking the MySQL protocol.",
        epilog="Admin commands: 'marmot members [--address HOST:PORT] [--secret S]' and 'marmot health ...' "
        "print a running node's membership table / health; 'marmot verify [--address HOST:PORT,...] "
        "[--database DB]' compares every node's table digests (they read the admin HTTP API). Operations: "
        "'marmot status | databases', 'marmot remove | allow | decommission NODE_ID', 'marmot backup DIR', "
        "'marmot restore DIR --config PATH' (each with --help; docs/operations.md).",
    )

    def flag(name: str, **kw: Any) -> None:
        p.add_argument(f"--{name}", f"-{name}", **kw)

    flag("config", metavar="PATH", help="TOML config file (default: built-in defaults, see config.toml)")
    flag("node-id", type=int, metavar="N", help="node id (overrides node_id; 0 = derive from the machine)")
    flag("data-dir", metavar="DIR", help="directory of the SQLite files (overrides data_dir)")
    flag("mysql-port", type=int, metavar="PORT", help="MySQL protocol port (overrides [mysql] port)")
    flag("grpc-port", type=int, metavar="PORT", help="cluster port (overrides [cluster] grpc_port)")
    flag(
        "bind-address",
        metavar="ADDR",
        help="address both listeners bind to (overrides [mysql] bind_address and [cluster] grpc_bind_address; "
        "default 127.0.0.1)",
    )
    flag(
        "follow-addresses",
        metavar="ADDRS",
        help="comma-separated cluster addresses (host:grpc_port) to follow as a read-only replica: turns "
        "replica mode on (needs [replica] secret or MARMOT_REPLICA_SECRET)",
    )
    flag(
        "daemon",
        action="store_true",
        help="run in the background; the command waits until the node serves (exit 0) or fails (exit 1)",
    )
    flag(
        "pid-file",
        metavar="PATH",
        help="write the process id to PATH once the node serves; refuse to start if PATH names a running process",
    )
    p.add_argument("--version", action="version", version=f"marmot {__version__}")
    return p


def overrides_from(args: argparse.Namespace) -> dict[str, object]:
    out: dict[str, object] = {}
    if args.node_id is not None:
        out["node_id"] = args.node_id
    if args.data_dir is not None:
        out["data_dir"] = args.data_dir
    if args.mysql_port is not None:
        out["mysql.port"] = args.mysql_port
    if args.grpc_port is not None:
        out["cluster.grpc_port"] = args.grpc_port
    if args.bind_address is not None:
        out["mysql.bind_address"] = args.bind_address
        out["cluster.grpc_bind_address"] = args.bind_address
    if args.follow_addresses:
        out["replica.follow_addresses"] = [a.strip() for a in args.follow_addresses.split(",") if a.strip()]
        out["replica.enabled"] = True
    return out


#: ``marmot <command> --help`` for each (admin/operate.py, admin/backup.py; docs/operations.md).
OPERATOR_COMMANDS = ("remove", "allow", "decommission", "databases", "status", "backup", "restore")


def _operator_command(name: str, argv: list[str]) -> int:
    """Membership changes, inspection, backup and restore: each talks to a node's admin API (restore
    writes a stopped node's data directory)."""
    from marmot.admin import backup, operate

    main_of = {
        "remove": operate.main_remove,
        "allow": operate.main_allow,
        "decommission": operate.main_decommission,
        "databases": operate.main_databases,
        "status": operate.main_status,
        "backup": backup.main_backup,
        "restore": backup.main_restore,
    }
    return main_of[name](argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("members", "health", "verify"):
        # admin sub-commands: read a running node's admin API and print a table
        from marmot.admin import commands

        main_of = {
            "members": commands.main_members,
            "health": commands.main_health,
            "verify": commands.main_verify,
        }
        return main_of[argv[0]](argv[1:])
    if argv and argv[0] in OPERATOR_COMMANDS:
        return _operator_command(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.config, overrides_from(args), refuse_unbuilt=True)
    except ConfigError as err:
        print(f"marmot: invalid configuration: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"marmot: cannot read configuration: {err}", file=sys.stderr)
        return 2
    pid_file = PidFile(args.pid_file) if args.pid_file else None
    if pid_file is not None:
        try:
            pid_file.check()  # before daemonizing, so the refusal reaches the terminal
        except StartupError as err:
            print(f"marmot: {err}", file=sys.stderr)
            return 1
    readiness = daemonize() if args.daemon else None
    return _serve(cfg, pid_file, readiness)


def _serve(cfg: Config, pid_file: PidFile | None, readiness: Readiness | None) -> int:
    """Run the node until a signal; 0 after a clean stop, 1 with a one-line message when it cannot start."""
    from marmot.cluster.membership import MembershipError
    from marmot.config import resolve_node_id
    from marmot.node import Node

    configure_logging(cfg.logging, resolve_node_id(cfg))
    for warning in cfg.warnings:
        logging.getLogger("marmot.config").warning(warning)
    for warning in exposure_warnings(cfg):
        logging.getLogger("marmot.node").warning(warning)
    if cfg.mysql.enabled and (fd_warning := raise_fd_limit(cfg.mysql.max_connections)) is not None:
        logging.getLogger("marmot.node").warning(fd_warning)

    def serving() -> None:
        """The listeners are bound: only now does the PID file claim the process serves."""
        if pid_file is not None:
            pid_file.write()
        if readiness is not None:
            readiness.ready()

    error: str | None = None
    runner: Callable[[Coroutine[Any, Any, None]], None]  # uvloop.run or asyncio.run
    try:
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        if cfg.replica.enabled:  # a read-only follower of a cluster, no member (src/marmot/replica/)
            from marmot.replica.node import ReplicaNode

            runner(ReplicaNode(cfg).run_until_signalled(on_serving=serving))
        else:
            runner(Node(cfg).run_until_signalled(on_serving=serving))
    except StartupError as err:
        error = str(err)
    except MembershipError as err:  # refused by the cluster (removed, duplicate node id, ...)
        error = f"cannot join the cluster: {err}"
    except OSError as err:
        error = str(err)
    except BaseException as err:
        if readiness is not None:
            readiness.failed(f"{type(err).__name__}: {err}")
        raise
    finally:
        if pid_file is not None:
            pid_file.remove()
    if error is None:
        return 0
    logging.getLogger("marmot.node").error("%s", error)
    print(f"marmot: {error}", file=sys.stderr)
    if readiness is not None:
        readiness.failed(error)
    return 1


if __name__ == "__main__":
    sys.exit(main())
