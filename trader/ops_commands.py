"""`trader status | halt | resume`: the operator's hand on the kill switch."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from tasks.settings import load_config


def _db(args: argparse.Namespace) -> tuple[Path, object]:
    config = load_config(args.config)
    return (Path(args.db) if args.db else config.cycle.db_path), config


def cmd_status(args: argparse.Namespace) -> int:
    from tasks.safety import status

    path, config = _db(args)
    if not path.exists():
        print(f"no database at {path}: no cycle has run yet (trader cycle)", file=sys.stderr)
        return 1
    for line in status(path, config.safety):  # type: ignore[attr-defined]
        print(line)
    return 0


def cmd_halt(args: argparse.Namespace) -> int:
    from tasks.safety import halt

    path, _ = _db(args)
    outcome = halt(path, args.reason, args.who, wait_s=args.wait)
    record = outcome.record
    if record is not None:
        print(f"{record.state} since {record.since:%Y-%m-%d %H:%M:%S}Z: {record.cause}")
        print("the next cycle runs the kill switch: entry orders cancelled, every stop kept")
    elif outcome.applied_by is not None:
        print(f"HALTED: applied by {outcome.applied_by} (operator halt: {args.reason})")
        print("that cycle runs the kill switch: entry orders cancelled, every stop kept")
    else:
        print(
            f"HALT queued ({outcome.request.request_id}): {path} is held by another process "
            f"for more than {args.wait:g} s; the next cycle applies it before any decision"
        )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from tasks.safety import resume

    path, config = _db(args)
    if not args.yes:
        if not sys.stdin.isatty():
            print("resume: refusing without confirmation; pass --yes", file=sys.stderr)
            return 2
        answer = input(f"Resume trading on {path} as {args.who} ({args.why})? type 'resume': ")
        if answer.strip() != "resume":
            print("not resumed", file=sys.stderr)
            return 2
    record = resume(path, config.safety, args.who, args.why, args.force)  # type: ignore[attr-defined]
    print(f"{record.state} since {record.since:%Y-%m-%d %H:%M:%S}Z: {record.cause}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    who = getpass.getuser()
    for name, func, helptext in (
        ("status", cmd_status, "state, cause, invariants vs thresholds, positions and stops"),
        ("halt", cmd_halt, "HALT now (kill switch): entries cancelled, stops kept"),
        ("resume", cmd_resume, "leave HALTED (explicit; refused while a halt condition holds)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--config", type=Path, default=None)
        p.add_argument("--db", default=None)
        p.set_defaults(func=func)
        if name == "halt":
            p.add_argument("--reason", required=True)
            p.add_argument("--who", default=who)
            p.add_argument(
                "--wait", type=float, default=60.0,
                help="seconds to wait for a running cycle to apply it (it is queued anyway)",
            )
        if name == "resume":
            p.add_argument("--why", required=True, help="why it is safe to resume")
            p.add_argument("--who", default=who)
            p.add_argument("--force", action="store_true", help="resume over a holding condition")
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
