"""`shoal groups`: list, describe (with lag), reset offsets, delete consumer groups.

Talks the Kafka protocol to any broker of the cluster (like Kafka's kafka-consumer-groups.sh),
so it works against remote and multi-agent clusters and against Kafka itself. Exit codes: 0 ok,
1 error (message on stderr), 2 usage.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from shoal.client import (
    EARLIEST,
    LATEST,
    TP,
    Admin,
    ClientError,
    GroupDescription,
    MemberDescription,
)
from shoal.protocol import errors
from shoal.tools.table import format_pairs, format_table

DEFAULT_BOOTSTRAP: Final = "127.0.0.1:9092"
DEFAULT_TIMEOUT_MS: Final = 10_000
BOOTSTRAP_ENV: Final = "SHOAL_BOOTSTRAP"
# States in which a group has no members, so offsets may be changed from outside.
INACTIVE_STATES: Final = frozenset({"Empty", "Dead"})


class CommandError(Exception):
    """A failure to report on stderr with exit code 1."""


# -- argv ----
def _partitions(raw: str) -> list[int]:
    try:
        out = sorted({int(p) for p in raw.split(",") if p.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of partitions: {raw!r}") from None
    if not out or out[0] < 0:
        raise argparse.ArgumentTypeError(f"not a list of partitions: {raw!r}")
    return out


def parse_datetime_ms(raw: str) -> int:
    """ISO 8601 to epoch ms; without a zone the local one, as Kafka's tool does."""
    try:
        when = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 date-time: {raw!r} (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()
    return int(when.timestamp() * 1000)


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    """Connection and output options; accepted before and after the subcommand."""
    default: Any = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--bootstrap",
        default=default,
        metavar="HOST:PORT",
        help=f"any broker of the cluster [env {BOOTSTRAP_ENV}; default {DEFAULT_BOOTSTRAP}]",
    )
    parser.add_argument(
        "--timeout-ms",
        type=int,
        default=default,
        help=f"timeout of each connect and request [default {DEFAULT_TIMEOUT_MS}]",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="machine-readable output",
    )


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add `groups` to the subparsers `sub` of the main command line."""
    parser: argparse.ArgumentParser = sub.add_parser(
        "groups",
        help="list, describe, reset and delete consumer groups",
        description="Consumer groups of a Kafka-compatible cluster (any broker works).",
    )
    _common(parser, top=True)
    cmds = parser.add_subparsers(dest="groups_command", required=True, metavar="COMMAND")

    p = cmds.add_parser("list", help="groups with their state")
    p.add_argument("--state", action="append", default=[], help="only groups in this state")
    _common(p, top=False)

    p = cmds.add_parser("describe", help="members, assignments, committed offsets and lag")
    p.add_argument("group")
    _common(p, top=False)

    p = cmds.add_parser(
        "reset",
        help="reset committed offsets of an inactive group (dry run unless --execute)",
        description="Plan new committed offsets for one topic of an inactive group; with "
        "--execute commit them. Refused while the group has members.",
    )
    p.add_argument("group")
    p.add_argument("--topic", required=True, help="the topic whose offsets are reset")
    p.add_argument(
        "--partitions", type=_partitions, default=None, help="comma-separated (default: all)"
    )
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="first offset kept")
    to.add_argument("--to-latest", action="store_true", help="log end offset")
    to.add_argument(
        "--to-datetime",
        type=parse_datetime_ms,
        metavar="ISO8601",
        help="first offset with a timestamp at or after this (log end if none)",
    )
    to.add_argument("--to-offset", type=int, metavar="N", help="this offset (kept in range)")
    to.add_argument(
        "--shift-by", type=int, metavar="N", help="committed offset plus N (kept in range)"
    )
    p.add_argument("--execute", action="store_true", help="commit the plan (default: dry run)")
    _common(p, top=False)

    p = cmds.add_parser("delete", help="delete empty groups and their committed offsets")
    p.add_argument("groups", nargs="+", metavar="GROUP")
    _common(p, top=False)
    return parser


# -- output ----
@dataclass
class Output:
    as_json: bool

    def emit(self, doc: Any, text: str) -> None:
        if self.as_json:
            print(json.dumps(doc, indent=2, sort_keys=False))
        elif text:
            print(text)


# -- commands ----
async def cmd_list(admin: Admin, args: argparse.Namespace, out: Output) -> int:
    groups = await admin.list_groups()
    wanted = {s.strip().lower() for raw in args.state for s in raw.split(",") if s.strip()}
    if wanted:
        groups = [g for g in groups if g.state.lower() in wanted]
    doc = [
        {"group": g.group_id, "state": g.state, "protocol_type": g.protocol_type} for g in groups
    ]
    rows = [(g.group_id, g.state, g.protocol_type or None) for g in groups]
    out.emit(doc, format_table(("GROUP", "STATE", "PROTOCOL-TYPE"), rows))
    return 0


def _missing(desc: GroupDescription, has_offsets: bool) -> bool:
    if desc.error_code == errors.GROUP_ID_NOT_FOUND:
        return not has_offsets
    return desc.state == "Dead" and not desc.members and not has_offsets


async def _describe_doc(admin: Admin, group: str) -> dict[str, Any]:
    desc = await admin.describe_group(group)
    if desc.error_code not in (errors.NONE, errors.GROUP_ID_NOT_FOUND):
        raise CommandError(f"cannot describe group {group!r}: {errors.error_name(desc.error_code)}")
    committed = await admin.offset_fetch(group)
    if _missing(desc, bool(committed)):
        raise CommandError(f"consumer group {group!r} does not exist")
    owner: dict[TP, MemberDescription] = {}
    for member in desc.members:
        for tp in member.assignment:
            owner[tp] = member
    partitions = sorted(set(committed) | set(owner))
    ends = await admin.list_offsets(partitions, LATEST) if partitions else {}
    rows = []
    total = 0
    for tp in partitions:
        c = committed.get(tp)
        end = ends.get(tp)
        leo = end.offset if end is not None and end.error_code == errors.NONE else None
        lag = max(0, leo - c.offset) if c is not None and leo is not None else None
        total += lag or 0
        m = owner.get(tp)
        row: dict[str, Any] = {
            "topic": tp.topic,
            "partition": tp.partition,
            "committed_offset": c.offset if c else None,
            "log_end_offset": leo,
            "lag": lag,
            "member_id": m.member_id if m else None,
            "host": m.client_host if m else None,
            "client_id": m.client_id if m else None,
        }
        if end is not None and end.error_code != errors.NONE:
            row["error"] = errors.error_name(end.error_code)
        rows.append(row)
    members = [
        {
            "member_id": m.member_id,
            "group_instance_id": m.group_instance_id,
            "client_id": m.client_id,
            "host": m.client_host,
            "assignment": [{"topic": tp.topic, "partition": tp.partition} for tp in m.assignment],
        }
        for m in desc.members
    ]
    return {
        "group": group,
        "state": "Empty" if desc.error_code == errors.GROUP_ID_NOT_FOUND else desc.state,
        "protocol_type": desc.protocol_type,
        "protocol": desc.protocol,
        "members": members,
        "partitions": rows,
        "total_lag": total,
    }


def _assignment_text(assignment: list[dict[str, Any]]) -> str | None:
    by_topic: dict[str, list[int]] = {}
    for a in assignment:
        by_topic.setdefault(a["topic"], []).append(a["partition"])
    if not by_topic:
        return None
    return " ".join(f"{t}:{','.join(map(str, sorted(ps)))}" for t, ps in sorted(by_topic.items()))


def describe_text(doc: dict[str, Any]) -> str:
    protocol = doc["protocol"] or doc["protocol_type"] or None
    if doc["protocol"] and doc["protocol_type"]:
        protocol = f"{doc['protocol']} ({doc['protocol_type']})"
    head = format_pairs(
        [
            ("Group", doc["group"]),
            ("State", doc["state"]),
            ("Protocol", protocol),
            ("Members", len(doc["members"])),
            ("Total lag", doc["total_lag"]),
        ]
    )
    parts = [head, ""]
    if doc["partitions"]:
        parts.append(
            format_table(
                (
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ),
                [
                    (
                        r["topic"],
                        r["partition"],
                        r["committed_offset"],
                        r["log_end_offset"],
                        r["lag"],
                        r["member_id"],
                        r["host"],
                        r["client_id"],
                    )
                    for r in doc["partitions"]
                ],
            )
        )
    else:
        parts.append("No committed offsets and no assigned partitions.")
    if doc["members"]:
        parts += [
            "",
            format_table(
                ("CONSUMER-ID", "INSTANCE-ID", "CLIENT-ID", "HOST", "#PARTITIONS", "ASSIGNMENT"),
                [
                    (
                        m["member_id"],
                        m["group_instance_id"],
                        m["client_id"],
                        m["host"],
                        len(m["assignment"]),
                        _assignment_text(m["assignment"]),
                    )
                    for m in doc["members"]
                ],
            ),
        ]
    return "\n".join(parts)


async def cmd_describe(admin: Admin, args: argparse.Namespace, out: Output) -> int:
    doc = await _describe_doc(admin, args.group)
    out.emit(doc, describe_text(doc))
    return 0


def _offsets_or_fail(listed: Mapping[TP, Any], what: str) -> dict[TP, int]:
    out = {}
    for tp, lo in listed.items():
        if lo.error_code != errors.NONE:
            raise CommandError(
                f"cannot read the {what} offset of {tp.topic}/{tp.partition}: "
                f"{errors.error_name(lo.error_code)}"
            )
        out[tp] = lo.offset
    return out


async def plan_reset(
    admin: Admin, args: argparse.Namespace, current: Mapping[TP, int], tps: list[TP]
) -> dict[TP, int]:
    """New offset per partition, kept within [earliest, log end] as Kafka's tool does."""
    earliest = _offsets_or_fail(await admin.list_offsets(tps, EARLIEST), "earliest")
    latest = _offsets_or_fail(await admin.list_offsets(tps, LATEST), "log end")
    if args.to_earliest:
        return earliest
    if args.to_latest:
        return latest
    if args.to_datetime is not None:
        found = _offsets_or_fail(await admin.list_offsets(tps, args.to_datetime), "timestamp")
        return {tp: latest[tp] if found[tp] < 0 else found[tp] for tp in tps}
    plan = {}
    for tp in tps:
        if args.to_offset is not None:
            wanted = args.to_offset
        else:
            if tp not in current:
                raise CommandError(
                    f"cannot shift {tp.topic}/{tp.partition}: the group has no committed offset"
                )
            wanted = current[tp] + args.shift_by
        plan[tp] = min(max(wanted, earliest[tp]), latest[tp])
    return plan


async def cmd_reset(admin: Admin, args: argparse.Namespace, out: Output) -> int:
    group = args.group
    desc = await admin.describe_group(group)
    if desc.error_code not in (errors.NONE, errors.GROUP_ID_NOT_FOUND):
        raise CommandError(f"cannot describe group {group!r}: {errors.error_name(desc.error_code)}")
    if desc.error_code == errors.NONE and desc.state not in INACTIVE_STATES:
        raise CommandError(
            f"group {group!r} has {len(desc.members)} active member(s) (state {desc.state}): "
            "offsets can only be reset while the group is inactive; stop its consumers first"
        )
    meta = await admin.metadata([args.topic])
    topic = meta.topics.get(args.topic)
    if topic is None or topic.error_code != errors.NONE:
        code = topic.error_code if topic else errors.UNKNOWN_TOPIC_OR_PARTITION
        raise CommandError(f"topic {args.topic!r}: {errors.error_name(code)}")
    chosen = args.partitions if args.partitions is not None else sorted(topic.leaders)
    unknown = [p for p in chosen if p not in topic.leaders]
    if unknown:
        raise CommandError(
            f"topic {args.topic!r} has partitions 0-{len(topic.leaders) - 1}; "
            f"no partition {','.join(map(str, unknown))}"
        )
    tps = [TP(args.topic, p) for p in chosen]
    current = {tp: c.offset for tp, c in (await admin.offset_fetch(group, tps)).items()}
    plan = await plan_reset(admin, args, current, tps)
    if args.execute:
        codes = await admin.offset_commit(group, plan)
        failed = {tp: c for tp, c in codes.items() if c != errors.NONE}
        if failed:
            tp, code = next(iter(sorted(failed.items())))
            hint = ""
            if code in (errors.UNKNOWN_MEMBER_ID, errors.REBALANCE_IN_PROGRESS):
                hint = " (the group has active members again)"
            raise CommandError(
                f"commit refused for {len(failed)} partition(s), e.g. {tp.topic}/{tp.partition}:"
                f" {errors.error_name(code)}{hint}"
            )
    rows = [(group, tp.topic, tp.partition, current.get(tp), plan[tp]) for tp in tps]
    doc = {
        "group": group,
        "executed": bool(args.execute),
        "partitions": [
            {"topic": t, "partition": p, "current_offset": c, "new_offset": n}
            for _, t, p, c, n in rows
        ],
    }
    text = format_table(("GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"), rows)
    if args.execute:
        text += f"\n\nCommitted new offsets for {len(rows)} partition(s)."
    else:
        text += "\n\nDry run: nothing was committed. Add --execute to commit these offsets."
    out.emit(doc, text)
    return 0


_DELETE_HINTS: Final = {
    errors.NON_EMPTY_GROUP: "group has active members",
    errors.GROUP_ID_NOT_FOUND: "group does not exist",
}


async def cmd_delete(admin: Admin, args: argparse.Namespace, out: Output) -> int:
    groups = list(dict.fromkeys(args.groups))
    codes = await admin.delete_groups(groups)
    results = []
    for g in groups:
        code = codes.get(g, errors.UNKNOWN_SERVER_ERROR)
        name = errors.error_name(code)
        ok = code == errors.NONE
        results.append(
            {"group": g, "deleted": ok, "error": None if ok else name, "message": None if ok
             else _DELETE_HINTS.get(code, name)}
        )  # fmt: skip
    text = format_table(
        ("GROUP", "RESULT"),
        [(r["group"], "deleted" if r["deleted"] else f"error: {r['message']}") for r in results],
    )
    out.emit(results, text)
    failed = [r for r in results if not r["deleted"]]
    if failed:
        print(
            f"shoal groups: {len(failed)} of {len(results)} group(s) not deleted", file=sys.stderr
        )
        return 1
    return 0


COMMANDS: Final[dict[str, Callable[[Admin, argparse.Namespace, Output], Awaitable[int]]]] = {
    "list": cmd_list,
    "describe": cmd_describe,
    "reset": cmd_reset,
    "delete": cmd_delete,
}


async def run_async(args: argparse.Namespace, bootstrap: str, timeout_s: float) -> int:
    out = Output(bool(args.json))
    async with Admin(bootstrap, timeout_s=timeout_s, client_id="shoal-groups") as admin:
        return await COMMANDS[args.groups_command](admin, args, out)


def run(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    """Run a parsed `groups` command line; returns the exit code."""
    env = os.environ if env is None else env
    bootstrap = args.bootstrap or env.get(BOOTSTRAP_ENV) or DEFAULT_BOOTSTRAP
    timeout_ms = args.timeout_ms if args.timeout_ms is not None else DEFAULT_TIMEOUT_MS
    if timeout_ms <= 0:
        print("shoal groups: error: --timeout-ms must be positive", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run_async(args, bootstrap, timeout_ms / 1000))
    except (CommandError, ClientError, ValueError) as exc:
        print(f"shoal groups: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): not an error, but Python must not flush to it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m shoal.tools.groups_cli ...`: the same as `shoal groups ...`."""
    parser = argparse.ArgumentParser(prog="shoal")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["groups", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    raise SystemExit(main())
