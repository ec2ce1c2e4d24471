#!/usr/bin/python3
"""agentwire example agent in Python.

    /usr/bin/python3 examples/python-agent/agent.py --uds /run/agent.sock
    /usr/bin/python3 examples/python-agent/agent.py --grpc 127.0.0.1:50051

Blocks requests for /admin* with 403 (audit tag "admin-blocked") and adds the
response header "x-agent: python" to every allowed request. Prints "ready" on
stdout once every listener is up; exits cleanly on SIGTERM or SIGINT.
Run it with Debian's interpreter, which has python3-grpcio and python3-protobuf.
"""

import argparse
import asyncio
import logging
import signal
import sys


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--uds", metavar="PATH", help="serve the Unix-socket transport at PATH")
    p.add_argument("--grpc", metavar="HOST:PORT", help="serve gRPC (AgentServiceV2) at HOST:PORT")
    p.add_argument("--service-name", default=None, help="also serve gRPC under this service name")
    p.add_argument("--agent-id", default="python-agent")
    p.add_argument("--max-concurrency", type=int, default=64, help="events handled at once per connection")
    p.add_argument(
        "--health-interval-ms",
        type=int,
        default=10_000,
        help="health report interval when the proxy asks for none",
    )
    p.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        help="events queued beyond --max-concurrency before answering RESOURCE_EXHAUSTED",
    )
    p.add_argument("--max-frame-size", type=int, default=16 << 20)
    p.add_argument(
        "--test-hooks",
        action="store_true",
        help="honour the x-agent-test-delay-ms and x-agent-test-fail request headers (tests only)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if not args.uds and not args.grpc:
        p.error("give --uds PATH, --grpc HOST:PORT, or both")
    if args.max_concurrency < 1:
        p.error("--max-concurrency must be at least 1")
    return args


async def serve(args):
    # Imported here so that a missing dependency is reported by main().
    from pyagent.grpcserver import DEFAULT_SERVICE_NAME, GRPCServer
    from pyagent.policy import Policy
    from pyagent.session import Settings
    from pyagent.uds import UnixServer

    settings = Settings(
        agent_id=args.agent_id,
        max_concurrency=args.max_concurrency,
        health_interval_ms=args.health_interval_ms,
        max_frame_size=args.max_frame_size,
        max_queue=args.max_queue,
    )
    policy = Policy(test_hooks=args.test_hooks)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    servers = []
    try:
        if args.uds:
            uds = UnixServer(settings, policy)
            await uds.start(args.uds)
            servers.append(uds)
        if args.grpc:
            grpc_server = GRPCServer(settings, policy, args.service_name or DEFAULT_SERVICE_NAME)
            await grpc_server.start(args.grpc)
            servers.append(grpc_server)
        print("ready", flush=True)
        await stop.wait()
        logging.getLogger("pyagent").info("stopping")
    finally:
        for s in reversed(servers):
            await s.close()


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import pyagent.stubs  # noqa: F401
    except ImportError as exc:
        print(f"python-agent: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args))
    except OSError as exc:
        print(f"python-agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
