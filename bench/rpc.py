"""Node-to-node RPC benchmark: our msgpack RPC (``marmot.cluster.rpc``) against ``grpc.aio``.

Both stacks run the same unary echo of a msgpack request ``{"seq": i, "payload": <100 bytes>}``: the
client packs it, the server unpacks it and answers with it (ours does the msgpack work inside the RPC
layer; for gRPC the handler and client call ``msgpack`` themselves over raw-bytes methods registered with
``grpc.method_handlers_generic_handler``, so no protobuf code generation is needed and both do the same
serialisation work). Ours runs with a cluster secret, i.e. with the authenticated handshake.

The server is a separate process (this script re-executed with ``--serve``), the client is this process;
the two stacks are measured one after the other, never at the same time. Each stack gets 200 warm-up
calls, then ``--duration`` seconds (3) of sequential calls, then ``--duration`` seconds with
``--concurrency`` (16) callers sharing one connection / channel. Every call is timed.

    .venv/bin/python bench/rpc.py                  # needs the bench extra: pip install -e '.[bench]'
    .venv/bin/python bench/rpc.py --loop uvloop    # when uvloop is installed

Prints a markdown table and writes it to ``bench/results/rpc-latest.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import msgpack

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PAYLOAD = bytes(range(100))
SECRET = "bench-secret"
WARMUP = 200
GRPC_METHOD = "/marmot.bench.Echo/Call"


def _install_loop(kind: str) -> None:
    if kind == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


# ---------------------------------------------------------------------------------------------- servers


async def _serve_ours() -> None:
    from marmot.cluster.rpc import RpcRouter, serve_rpc

    router = RpcRouter()

    async def echo(payload, ctx):
        return payload

    router.unary("Echo", echo)
    server = await serve_rpc(router, "127.0.0.1", 0, secret=SECRET, node_id=1)
    await _announce_and_wait(server.sockets[0].getsockname()[1])


async def _serve_grpc() -> None:
    import grpc

    async def echo(request: bytes, context) -> bytes:
        return msgpack.packb(msgpack.unpackb(request))

    handler = grpc.method_handlers_generic_handler(
        "marmot.bench.Echo", {"Call": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await _announce_and_wait(port)


async def _announce_and_wait(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    print(f"PORT {port}", flush=True)
    await stop.wait()


@dataclass
class Server:
    proc: subprocess.Popen
    port: int

    @classmethod
    def start(cls, stack: str, loop: str) -> Server:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", stack, "--loop", loop],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            raise RuntimeError(f"{stack} server did not start: {line!r}")
        return cls(proc, int(line.split()[1]))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------- clients


@dataclass
class Result:
    stack: str
    mode: str
    calls: int
    seconds: float
    latencies_ns: list[int]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ns)
        return xs[min(len(xs) - 1, int(q * len(xs)))] / 1000.0


async def _measure(stack: str, call, duration: float, concurrency: int) -> list[Result]:
    for i in range(WARMUP):
        await call(i)
    results = []
    for mode, workers in (("sequential", 1), (f"{concurrency} concurrent", concurrency)):
        lat: list[int] = []
        end = time.perf_counter() + duration
        start = time.perf_counter()
        await asyncio.gather(*(_worker(call, w, end, lat) for w in range(workers)))
        elapsed = time.perf_counter() - start
        results.append(Result(stack, mode, len(lat), elapsed, lat))
    return results


async def _worker(call, wid: int, end: float, lat: list[int]) -> None:
    seq = wid << 32
    now = time.perf_counter_ns
    clock = time.perf_counter
    while clock() < end:
        t0 = now()
        await call(seq)
        lat.append(now() - t0)
        seq += 1


async def _client_ours(port: int, duration: float, concurrency: int) -> list[Result]:
    from marmot.cluster.rpc import RpcClient

    client = RpcClient(f"127.0.0.1:{port}", secret=SECRET, node_id=2)
    rpc = client.call

    async def call(seq: int) -> None:
        answer = await rpc("Echo", {"seq": seq, "payload": PAYLOAD}, 5.0)
        assert answer["seq"] == seq

    try:
        return await _measure("marmot rpc", call, duration, concurrency)
    finally:
        await client.close()


async def _client_grpc(port: int, duration: float, concurrency: int) -> list[Result]:
    import grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = channel.unary_unary(GRPC_METHOD)
        pack, unpack = msgpack.packb, msgpack.unpackb

        async def call(seq: int) -> None:
            answer = unpack(await stub(pack({"seq": seq, "payload": PAYLOAD}), timeout=5.0))
            assert answer["seq"] == seq

        return await _measure("grpc.aio", call, duration, concurrency)


def _run_stack(stack: str, args: argparse.Namespace) -> list[Result]:
    server = Server.start(stack, args.loop)
    try:
        time.sleep(0.2)
        client = _client_ours if stack == "ours" else _client_grpc
        _install_loop(args.loop)
        return asyncio.run(client(server.port, args.duration, args.concurrency))
    finally:
        server.stop()


# ---------------------------------------------------------------------------------------------- report


def _versions() -> str:
    parts = [f"Python {platform.python_version()}", "msgpack " + ".".join(map(str, msgpack.version))]
    try:
        import grpc

        parts.append(f"grpcio {grpc.__version__}")
    except ImportError:
        pass
    return ", ".join(parts)


def _table(ours: list[Result], theirs: list[Result], args: argparse.Namespace) -> str:
    load = os.getloadavg()
    lines = [
        "# Node-to-node RPC: marmot msgpack RPC vs grpc.aio",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} · {os.cpu_count()} CPUs · load average at start "
        f"{load[0]:.2f} · loop {args.loop} · {_versions()}",
        f"Unary echo of a msgpack `{{seq, payload: 100 B}}`, server in its own process on 127.0.0.1, "
        f"{WARMUP} warm-up calls, {args.duration:g} s per mode, one connection/channel.",
        "",
        "| mode | stack | calls/s | p50 µs | p99 µs | ours / grpc |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mine, other in zip(ours, theirs, strict=True):
        ratio = mine.rate / other.rate if other.rate else float("inf")
        lines.append(
            f"| {mine.mode} | {mine.stack} | {mine.rate:,.0f} | {mine.pct(0.5):,.0f} | "
            f"{mine.pct(0.99):,.0f} | **{ratio:.1f}×** |"
        )
        lines.append(
            f"| {other.mode} | {other.stack} | {other.rate:,.0f} | {other.pct(0.5):,.0f} | "
            f"{other.pct(0.99):,.0f} | |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=3.0, help="seconds per mode (default 3)")
    ap.add_argument("--concurrency", type=int, default=16, help="concurrent callers (default 16)")
    ap.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    ap.add_argument("--serve", choices=("ours", "grpc"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        _install_loop(args.loop)
        asyncio.run(_serve_ours() if args.serve == "ours" else _serve_grpc())
        return
    try:
        import grpc  # noqa: F401
    except ImportError:
        sys.exit("grpcio is missing: .venv/bin/pip install -e '.[bench]'")
    ours = _run_stack("ours", args)
    theirs = _run_stack("grpc", args)
    report = _table(ours, theirs, args)
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rpc-latest.md").write_text(report)
    print(f"written to {RESULTS / 'rpc-latest.md'}")


if __name__ == "__main__":
    main()
