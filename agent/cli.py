"""The `ocpp-agent` command line. Each subcommand imports only what it needs,
so `ocpp-agent check-config` or `ocpp-agent log` start fast on a small board."""

from __future__ import annotations

import argparse
import os
import sys

from agent import __version__
from agent.config import DEFAULT_CONFIG_PATH

OCPP_VERSIONS = ("1.6", "2.0.1", "2.1")  # what --ocpp accepts: csms.ocpp_version's choices


def _config_path(args) -> str:
    return args.config or os.environ.get("OCPP_AGENT_CONFIG") or DEFAULT_CONFIG_PATH


def _load_or_report(path: str):
    """Load the config, or print every problem and return None."""
    from agent.config import load_config
    from agent.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"ocpp-agent: invalid configuration {path}:", file=sys.stderr)
        for problem in exc.errors:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_run(args) -> int:
    """Run the daemon in the foreground."""
    config = _load_or_report(_config_path(args))
    if config is None:
        return 1
    from agent.app import run_agent

    return run_agent(config, config_path=_config_path(args))


def cmd_check_config(args) -> int:
    """Validate a config file."""
    config = _load_or_report(args.path)
    if config is None:
        return 1
    print(f"{args.path}: OK ({config.csms.ocpp_version}, {len(config.evse)} EVSE, hal {config.hal.backend})")
    return 0


def cmd_demo(args) -> int:
    """Run the self-contained demo."""
    from agent.commands.demo import run_demo

    return run_demo(ocpp_version=args.ocpp, interactive=args.interactive)


def cmd_sim(args) -> int:
    """Drive the mock HAL of a running agent."""
    from hal.mock.client import run_sim

    config = _load_or_report(_config_path(args))
    if config is None:
        return 2
    return run_sim(args.sim_args, socket_path=config.station.data_dir / "mock-hal.sock")


def cmd_log(args) -> int:
    """Query the OCPP message log."""
    from agent.commands.log import run_log_command

    config = _load_or_report(_config_path(args))
    if config is None:
        return 1
    try:
        return run_log_command(
            db_path=config.station.data_dir / "messages.sqlite",
            since=args.since, until=args.until, action=args.action, direction=args.direction,
            grep=args.grep, limit=args.limit, as_json=args.json,
        )
    except ValueError as exc:
        print(f"ocpp-agent log: {exc}", file=sys.stderr)
        return 1


def cmd_web(args) -> int:
    """Serve the local web dashboard."""
    from agent.commands.web import run_web_command

    config = _load_or_report(_config_path(args))
    if config is None:
        return 1
    return run_web_command(config, listen=args.listen)


def cmd_status(args) -> int:
    """The running agent's live state, from its status socket."""
    from agent.commands.status import run_status_command

    config = _load_or_report(_config_path(args))
    if config is None:
        return 1
    return run_status_command(data_dir=config.station.data_dir, as_json=args.json)


def cmd_bench(args) -> int:
    """Hardware bring-up on a bench rig."""
    from agent.commands.bench import run_bench

    config = _load_or_report(_config_path(args))
    if config is None:
        return 1
    return run_bench(config, args.bench_args)


def cmd_pics(args) -> int:
    """Print the implementation statement."""
    from agent.commands.pics import render_pics

    print(render_pics(args.ocpp))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="ocpp-agent", description="OCPP 1.6J / 2.0.1 charging station agent")
    parser.add_argument("--version", action="version", version=f"ocpp-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground")
    run.add_argument("--config", help=f"config file (default $OCPP_AGENT_CONFIG or {DEFAULT_CONFIG_PATH})")
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and list every error")
    check.add_argument("path")
    check.set_defaults(func=cmd_check_config)

    demo = sub.add_parser("demo", help="embedded CSMS plus an agent on the mock HAL")
    demo.add_argument("--ocpp", choices=OCPP_VERSIONS, default="1.6")
    demo.add_argument("--interactive", action="store_true", help="keep running; drive it with `ocpp-agent sim`")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("sim", help="drive the mock HAL of a running agent (plug, tap, state, ...)")
    sim.add_argument("--config")
    sim.add_argument("sim_args", nargs=argparse.REMAINDER, metavar="COMMAND ARGS")
    sim.set_defaults(func=cmd_sim)

    bench = sub.add_parser("bench", help="hardware bring-up: relays, feedback, meter, RFID, pilot, self-test")
    bench.add_argument("--config")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="DEVICE ARGS")
    bench.set_defaults(func=cmd_bench)

    log = sub.add_parser("log", help="query the OCPP message log, newest first")
    log.add_argument("--config")
    log.add_argument("--since", help="ISO time or age such as 10m, 2h, 1d")
    log.add_argument("--until", help="ISO time or age")
    log.add_argument("--action")
    log.add_argument("--direction", choices=("in", "out"))
    log.add_argument("--grep", help="case-insensitive text in the frame")
    log.add_argument("--limit", type=int, default=100)
    log.add_argument("--json", action="store_true", help="one JSON object per line")
    log.set_defaults(func=cmd_log)

    web = sub.add_parser("web", help="the local web dashboard (a process of its own beside the daemon)")
    web.add_argument("--config")
    web.add_argument("--listen", metavar="HOST:PORT", help="default: [web] listen, 127.0.0.1:8080")
    web.set_defaults(func=cmd_web)

    status = sub.add_parser("status", help="the running agent's live state: connection, EVSEs, faults")
    status.add_argument("--config")
    status.add_argument("--json", action="store_true", help="the status object (as GET /api/status)")
    status.set_defaults(func=cmd_status)

    pics = sub.add_parser("pics", help="print the implementation statement")
    pics.add_argument("--ocpp", choices=OCPP_VERSIONS, default="1.6")
    pics.set_defaults(func=cmd_pics)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `ocpp-agent` and `python -m agent`."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
