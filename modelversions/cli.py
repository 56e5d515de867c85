"""The ``modelversions`` command line: a thin layer over :class:`ModelRegistry`.

Every command is one or two registry calls; every rule (what a deploy promotes,
what a rollback targets, what prune keeps) is the library's. See ``docs/cli.md``.

Importing this module does not import joblib or numpy: only commands that load a
model would, and none does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import IO, Any

from modelversions import __version__
from modelversions.errors import (
    ConcurrentUpdateError,
    ForbiddenTransitionError,
    IntegrityError,
    InvalidInputError,
    ModelVersionsError,
    NoRollbackTargetError,
    NotFoundError,
    StorageError,
)
from modelversions.records import Event, ModelVersion, Status
from modelversions.registry import ModelRegistry, VerifyReport

__all__ = [
    "ENV_VAR",
    "EXIT_ERROR",
    "EXIT_INTEGRITY",
    "EXIT_NOT_FOUND",
    "EXIT_NO_ROLLBACK_TARGET",
    "EXIT_OK",
    "EXIT_STORAGE",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

PROG = "modelversions"
ENV_VAR = "MODELVERSIONS_REGISTRY"

EXIT_OK = 0
EXIT_ERROR = 1  # any other modelversions error (e.g. the version already exists)
EXIT_USAGE = 2  # bad input: usage errors, invalid names or versions, refused transitions
EXIT_NOT_FOUND = 3  # no such registry, model or version; a pruned artifact
EXIT_NO_ROLLBACK_TARGET = 4
EXIT_INTEGRITY = 5  # damaged data, including a verify that finds damage
EXIT_STORAGE = 6  # storage failure, or a change that kept losing races to other writers

# Most specific first: the first matching class decides the exit code.
_EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (InvalidInputError, EXIT_USAGE),
    (NotFoundError, EXIT_NOT_FOUND),
    (NoRollbackTargetError, EXIT_NO_ROLLBACK_TARGET),
    (IntegrityError, EXIT_INTEGRITY),
    (ConcurrentUpdateError, EXIT_STORAGE),
    (StorageError, EXIT_STORAGE),
    (ModelVersionsError, EXIT_ERROR),
)

EPILOG = f"""\
registry:
  --registry URI, or the {ENV_VAR} environment variable: a folder, file://PATH,
  memory:// (empty each run), or an fsspec URL such as s3://bucket/prefix.
  A folder must exist (registries are created by the library's ModelRegistry).

exit codes:
  0  success
  1  any other modelversions error (e.g. the version already exists)
  2  bad input: usage, invalid name or version, a refused change (failed version
     without --force, deleting a deployed version)
  3  not found: the registry folder, a model or version, nothing deployed to
     promote, a pruned artifact
  4  no rollback target
  5  integrity: damaged data, or verify found damage
  6  storage failure, or a change that kept conflicting with other writers

Add --json to any command for machine-readable output.
"""


class _Failure(Exception):
    """An error found by the command line itself (not by the library)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- formatting
# Characters a terminal may act on or that change how a line reads: C0/C1 controls
# (newline, ESC...), format characters (bidi overrides such as U+202E, zero-width
# marks), line and paragraph separators, surrogates and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[ch]
    code = ord(ch)
    if unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
        return ch
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _safe(text: object) -> str:
    r"""``text`` with every control or invisible formatting character shown as an escape.

    Everything the command line prints passes through here (a newline shows as ``\n``,
    ESC as ``\x1b``, U+202E as ``\u202e``), so stored text (reasons, descriptions, tags,
    metric keys, users, hosts) can neither start a new line nor drive the terminal.
    Backslashes are printed as they are. JSON output is escaped by ``json.dumps``.

    >>> print(_safe("ok\n\x1b[2J\u202egnp.exe"))
    ok\n\x1b[2J\u202egnp.exe
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape_char(ch) for ch in text)


_COLORS = {Status.STABLE.value: "32", Status.CANDIDATE.value: "33", Status.FAILED.value: "31"}


def _use_color(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class _Out:
    """Where and how a command prints."""

    def __init__(self, stream: IO[str], as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json
        self.color = not as_json and _use_color(stream)

    def line(self, text: str = "", *, status: str | None = None) -> None:
        """Print ``text`` (escaped: see :func:`_safe`) as one line, then ``status``
        (colored on a terminal when it is a status word)."""
        tail = "" if status is None else self._paint(status)
        self.stream.write(_safe(text) + tail + "\n")

    def _paint(self, word: str) -> str:
        if self.color and word in _COLORS:
            return f"\x1b[{_COLORS[word]}m{word}\x1b[0m"
        return _safe(word)

    def json(self, value: Any) -> None:
        self.stream.write(json.dumps(value, indent=2) + "\n")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """Left-aligned columns (cells escaped: see :func:`_safe`); status words are
        colored on a terminal."""
        rows = [[_safe(cell) for cell in row] for row in rows]
        widths = [len(h) for h in headers]
        for row in rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        self.line("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
        for row in rows:
            cells = []
            for cell, width in zip(row, widths, strict=True):
                padded = cell.ljust(width)
                if self.color and cell in _COLORS:
                    padded = self._paint(cell) + " " * (width - len(cell))
                cells.append(padded)
            self.stream.write("  ".join(cells).rstrip() + "\n")  # cells are escaped


def _when(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _compact(mapping: Mapping[str, Any], limit: int = 40) -> str:
    text = " ".join(f"{k}={v}" for k, v in mapping.items())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _note(mv: ModelVersion) -> str:
    parts = []
    if mv.failure_reason:
        where = f" in {mv.failed_env}" if mv.failed_env else ""
        parts.append(f"failed{where}: {mv.failure_reason}")
    if mv.pruned:
        parts.append("artifact pruned")
    return "; ".join(parts)


def _envs_by_version(reg: ModelRegistry, name: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for env, mv in reg.envs(name).items():
        out.setdefault(str(mv.version), []).append(env)
    return out


_VERSION_HEADERS = ("", "VERSION", "STATUS", "ENVS", "CREATED (UTC)", "SIZE", "METRICS", "NOTE")


def _version_row(mv: ModelVersion, envs: Sequence[str]) -> list[str]:
    return [
        "*" if envs else "",
        str(mv.version),
        mv.status.value,
        ",".join(envs),
        _when(mv.created_at),
        _size(mv.size),
        _compact(mv.metrics),
        _note(mv),
    ]


def _version_json(mv: ModelVersion, envs: Sequence[str]) -> dict[str, Any]:
    return {**mv.to_dict(), "envs": list(envs)}


def _print_versions(
    out: _Out, versions: Sequence[ModelVersion], envs: Mapping[str, list[str]]
) -> None:
    if out.as_json:
        out.json([_version_json(mv, envs.get(str(mv.version), [])) for mv in versions])
        return
    rows = [_version_row(mv, envs.get(str(mv.version), [])) for mv in versions]
    out.table(_VERSION_HEADERS, rows)


def _dry_run_line(out: _Out) -> None:
    out.line("dry run: nothing was changed")


# ---------------------------------------------------------------------- the registry
def _open(args: argparse.Namespace) -> ModelRegistry:
    location = getattr(args, "registry", None) or os.environ.get(ENV_VAR)
    if not location:
        raise _Failure(f"no registry given: pass --registry URI or set {ENV_VAR}", EXIT_USAGE)
    if "://" not in location or location.startswith("file://"):
        folder = location[len("file://") :] if location.startswith("file://") else location
        folder = os.path.expanduser(folder)
        # A missing folder is a typo, not a registry to create; anything else that is
        # not a folder (a file) gets the library's own StorageError message.
        if not os.path.lexists(folder):
            raise _Failure(f"no registry at {folder!r}: the folder does not exist", EXIT_NOT_FOUND)
    return ModelRegistry(location)


def _committed(
    reg: ModelRegistry, name: str, start: int, action: str, env: str, version: Any
) -> Event | None:
    """The event a change committed: the first matching one from ``start`` on."""
    for event in reg.history(name, start=start, env=env):
        if event.action == action and event.to_version == version:
            return event
    return None


# ---------------------------------------------------------------------- commands
def cmd_models(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    rows = []
    data = []
    for name in reg.models():
        versions = reg.versions(name)
        envs = {env: str(mv.version) for env, mv in reg.envs(name).items()}
        latest = str(versions[-1].version) if versions else ""
        data.append({"name": name, "versions": len(versions), "latest": latest, "envs": envs})
        deployed = ", ".join(f"{env}={v}" for env, v in envs.items())
        rows.append([name, str(len(versions)), latest, deployed])
    if out.as_json:
        out.json(data)
    elif not rows:
        out.line(f"no models in {reg.backend.url}")
    else:
        out.table(("MODEL", "VERSIONS", "LATEST", "DEPLOYED"), rows)
    return EXIT_OK


def cmd_list(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    _print_versions(out, reg.versions(args.name), _envs_by_version(reg, args.name))
    return EXIT_OK


def cmd_show(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    mv = reg.get(args.name, args.version)
    envs = _envs_by_version(reg, args.name).get(str(mv.version), [])
    if out.as_json:
        out.json(_version_json(mv, envs))
        return EXIT_OK
    fields = [
        ("name", mv.name),
        ("version", str(mv.version)),
        ("status", mv.status.value),
        ("deployed in", ", ".join(envs) or "-"),
        ("created", _when(mv.created_at) + " UTC"),
        ("sha256", mv.sha256),
        ("size", f"{_size(mv.size)} ({mv.size} bytes)"),
        ("pruned", "yes (artifact deleted)" if mv.pruned else "no"),
    ]
    if mv.failure_reason is not None or mv.failed_env is not None:
        fields.append(("failed in", mv.failed_env or "-"))
        fields.append(("failure", mv.failure_reason or "-"))
    if mv.description:
        fields.append(("description", mv.description))
    for label, mapping in (("metrics", mv.metrics), ("params", mv.params), ("tags", mv.tags)):
        if mapping:
            fields.append((label, json.dumps(dict(mapping), sort_keys=True)))
    width = max(len(label) for label, _ in fields)
    for label, value in fields:
        head = f"{label + ':':<{width + 1}}  "
        if label == "status":
            out.line(head, status=value)
        else:
            out.line(head + value)
    return EXIT_OK


def cmd_current(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    mv = reg.current(args.name, env=args.env)
    envs = [] if mv is None else _envs_by_version(reg, args.name).get(str(mv.version), [])
    if out.as_json:
        out.json(None if mv is None else _version_json(mv, envs))
    elif mv is None:
        out.line(f"nothing is deployed in {args.env} for {args.name}")
    else:
        out.table(_VERSION_HEADERS, [_version_row(mv, envs)])
    return EXIT_OK


def cmd_envs(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    envs = reg.envs(args.name)
    rows = []
    data = {}
    for env, mv in envs.items():
        try:
            target: str | None = str(reg.rollback_target(args.name, env=env).version)
        except NoRollbackTargetError:
            target = None
        data[env] = {**mv.to_dict(), "rollback_target": target}
        rows.append([env, str(mv.version), mv.status.value, _when(mv.created_at), target or "-"])
    if out.as_json:
        out.json(data)
    elif not rows:
        out.line(f"{args.name} is not deployed in any env")
    else:
        out.table(("ENV", "VERSION", "STATUS", "CREATED (UTC)", "ROLLBACK TO"), rows)
    return EXIT_OK


def _changes_lines(event: Event, dry_run: bool) -> list[str]:
    lines = []
    for change in event.changes:
        verb = "would become" if dry_run else "is now"
        lines.append(f"  {change.version} {verb} {change.new.value} (was {change.old.value})")
    return lines


def _report_move(
    reg: ModelRegistry, out: _Out, event: Event, deployed: ModelVersion | None, dry_run: bool
) -> None:
    """Print a deploy or rollback event, planned or committed."""
    if out.as_json:
        out.json(
            {
                "dry_run": dry_run,
                "event": event.to_dict(),
                "deployed": None if deployed is None else deployed.to_dict(),
            }
        )
        return
    env, frm, to = event.env, event.from_version, event.to_version
    if event.action == "deploy":
        head = f"{'would deploy' if dry_run else 'deployed'} {event.name} {to} to {env}"
        if frm is None:
            head += " (nothing was deployed there)"
        elif frm == to:
            head += f" ({to} is already deployed there)"
        else:
            head += f" ({'replacing' if dry_run else 'replaced'} {frm})"
        if event.forced:
            head += f"; forced: {to} stays failed"
    else:
        verb = "would roll back" if dry_run else "rolled back"
        head = f"{verb} {event.name} in {env}: {frm} -> {to or 'nothing'}"
    out.line(head)
    lines = _changes_lines(event, dry_run)
    if event.action == "deploy" and frm is not None and frm != to and not event.changes:
        replaced = reg.get(event.name, frm)
        lines.append(f"  {frm} keeps its status ({replaced.status.value})")
    for line in lines:
        out.line(line)
    if dry_run:
        _dry_run_line(out)


def _force_hint(exc: ModelVersionsError) -> ModelVersionsError:
    """The library's hint names the Python argument; name the option instead."""
    text = str(exc)
    if isinstance(exc, ForbiddenTransitionError) and "pass force=True" in text:
        return ForbiddenTransitionError(text.replace("pass force=True", "pass --force"))
    return exc


def cmd_deploy(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    try:
        plan = reg.plan_deploy(
            args.name, args.version, env=args.env, reason=args.reason, force=args.force
        )
        if args.dry_run:
            _report_move(reg, out, plan, reg.get(args.name, args.version), dry_run=True)
            return EXIT_OK
        mv = reg.deploy(args.name, args.version, env=args.env, reason=args.reason, force=args.force)
    except ModelVersionsError as exc:
        raise _force_hint(exc) from exc
    event = _committed(reg, args.name, plan.seq, "deploy", args.env, mv.version)
    _report_move(reg, out, event or plan, mv, dry_run=False)
    return EXIT_OK


def cmd_promote(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    source = reg.current(args.name, env=args.from_env)
    start = (
        1
        if source is None
        else reg.plan_deploy(args.name, source.version, env=args.to_env, force=True).seq
    )
    try:
        mv = reg.promote(
            args.name,
            from_env=args.from_env,
            to_env=args.to_env,
            reason=args.reason,
            force=args.force,
        )
    except ModelVersionsError as exc:
        raise _force_hint(exc) from exc
    event = _committed(reg, args.name, start, "deploy", args.to_env, mv.version)
    if event is None:  # pragma: no cover - only if the history was rewritten under us
        out.line(f"promoted {args.name} {mv.version} to {args.to_env}")
        return EXIT_OK
    _report_move(reg, out, event, mv, dry_run=False)
    return EXIT_OK


def cmd_rollback(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    plan = reg.plan_rollback(args.name, env=args.env, reason=args.reason)
    if args.dry_run:
        target = reg.rollback_target(args.name, env=args.env)
        _report_move(reg, out, plan, target, dry_run=True)
        return EXIT_OK
    mv = reg.rollback(args.name, env=args.env, reason=args.reason)
    event = _committed(reg, args.name, plan.seq, "rollback", args.env, mv.version)
    _report_move(reg, out, event or plan, mv, dry_run=False)
    return EXIT_OK


def cmd_mark_failed(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    mv = reg.mark_failed(args.name, args.version, reason=args.reason, env=args.env)
    if out.as_json:
        out.json(mv.to_dict())
    else:
        out.line(f"marked {mv.name} {mv.version} failed: {mv.failure_reason}")
        deployed = _envs_by_version(reg, args.name).get(str(mv.version))
        if deployed:
            out.line(f"  it is still deployed in {', '.join(deployed)}: roll back to replace it")
    return EXIT_OK


def cmd_mark_stable(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    mv = reg.mark_stable(args.name, args.version, reason=args.reason)
    if out.as_json:
        out.json(mv.to_dict())
    else:
        out.line(f"marked {mv.name} {mv.version} stable")
    return EXIT_OK


def cmd_history(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    events = reg.history(args.name, env=args.env, start=args.since)
    if args.limit is not None:
        events = events[-args.limit :] if args.limit else []
    if out.as_json:
        out.json([e.to_dict() for e in events])
        return EXIT_OK
    rows = []
    for e in events:
        move = ""
        if e.action in ("deploy", "rollback"):
            move = f"{e.from_version or '-'} -> {e.to_version or '-'}"
        changes = ", ".join(f"{c.version} {c.old.value}->{c.new.value}" for c in e.changes)
        if e.forced:
            changes = ", ".join(filter(None, ["forced", changes]))
        rows.append(
            [
                str(e.seq),
                _when(e.time),
                e.action,
                "-" if e.version is None else str(e.version),
                e.env or "",
                move,
                changes,
                f"{e.user or '?'}@{e.host or '?'}",
                e.reason or "",
            ]
        )
    headers = ("SEQ", "TIME (UTC)", "ACTION", "VERSION", "ENV", "MOVE", "CHANGES", "BY", "REASON")
    out.table(headers, rows)
    return EXIT_OK


def cmd_verify(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    report: VerifyReport = reg.verify(repair=args.repair, min_age=args.min_age)
    if out.as_json:
        out.json(
            {
                "ok": report.ok,
                "models": report.models,
                "versions": report.versions,
                "artifacts_checked": report.artifacts_checked,
                "problems": [
                    {"kind": p.kind, "name": p.name, "version": p.version, "detail": p.detail}
                    for p in report.problems
                ],
                "removed": list(report.removed),
            }
        )
    else:
        # One line per problem, each escaped: a detail quoting a planted key or a
        # stored reason cannot start a line of its own.
        out.line(str(report).split("\n", 1)[0])  # the counts
        for problem in report.problems:
            out.line(f"  {problem}")
        for removed in report.removed:
            out.line(f"  removed {removed}")
    if report.ok:
        return EXIT_OK
    _error(f"verify found damaged data in {reg.backend.url}")
    return EXIT_INTEGRITY


def cmd_prune(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    pruned = reg.prune(args.name, keep=args.keep, reason=args.reason, dry_run=args.dry_run)
    if out.as_json:
        out.json({"dry_run": args.dry_run, "pruned": [mv.to_dict() for mv in pruned]})
        return EXIT_OK
    versions = ", ".join(str(mv.version) for mv in pruned)
    if not pruned:
        out.line(f"nothing to prune in {args.name} (keeping the newest {args.keep})")
    elif args.dry_run:
        out.line(f"would prune {len(pruned)} version(s) of {args.name}: {versions}")
    else:
        out.line(f"pruned {len(pruned)} version(s) of {args.name}: {versions}")
    if args.dry_run:
        _dry_run_line(out)
    return EXIT_OK


def cmd_delete(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    mv = reg.get(args.name, args.version)
    reg.delete(args.name, args.version, reason=args.reason)
    if out.as_json:
        out.json({"deleted": mv.to_dict()})
    else:
        out.line(f"deleted {mv.name} {mv.version} (its history stays)")
    return EXIT_OK


# ---------------------------------------------------------------------- parser
Command = Callable[[ModelRegistry, argparse.Namespace, _Out], int]


def _non_negative(text: str) -> int:
    """An integer, 0 or more (``nan``, ``inf``, fractions and negatives are refused)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def _positive(text: str) -> int:
    value = _non_negative(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _seconds(text: str) -> float:
    """A finite number of seconds, 0 or more (``nan``, ``inf`` and negatives are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, not {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (global options are accepted before or after the command)."""
    # SUPPRESS defaults: an option given before the command is not overwritten by the
    # subcommand's parser when it is not repeated after it.
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("global options")
    group.add_argument(
        "--registry",
        metavar="URI",
        default=argparse.SUPPRESS,
        help=f"the registry: a folder or a URI (default: ${ENV_VAR})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print JSON (stable keys) instead of tables",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Versions, deploys and rollbacks of the models in a modelversions registry.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Command, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=text,
            description=text,
            parents=[common],
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(func=func)
        return p

    def env_option(p: argparse.ArgumentParser, text: str = "the environment") -> None:
        p.add_argument("--env", default="production", help=f"{text} (default: production)")

    def reason_option(p: argparse.ArgumentParser, required: bool = False) -> None:
        p.add_argument("--reason", required=required, help="why; recorded in the history")

    add("models", cmd_models, "list the models, their version count and deployments")

    p = add("list", cmd_list, "list a model's versions (* marks a deployed one)")
    p.add_argument("name", metavar="NAME")

    p = add("show", cmd_show, "show one version's record")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")

    p = add("current", cmd_current, "show the version deployed in an env")
    p.add_argument("name", metavar="NAME")
    env_option(p)

    p = add("envs", cmd_envs, "show every env's deployed version and rollback target")
    p.add_argument("name", metavar="NAME")

    p = add("deploy", cmd_deploy, "deploy a version to an env")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    env_option(p)
    reason_option(p)
    p.add_argument("--force", action="store_true", help="allow deploying a failed version")
    p.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")

    p = add("promote", cmd_promote, "deploy to one env the version another env runs")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--from", dest="from_env", default="staging", help="default: staging")
    p.add_argument("--to", dest="to_env", default="production", help="default: production")
    reason_option(p)
    p.add_argument("--force", action="store_true", help="allow promoting a failed version")

    p = add(
        "rollback",
        cmd_rollback,
        "deploy the latest stable version below the deployed one; mark that one failed",
    )
    p.add_argument("name", metavar="NAME")
    env_option(p)
    reason_option(p)
    p.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")

    p = add("mark-failed", cmd_mark_failed, "mark a version failed (no deploy changes)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    reason_option(p, required=True)
    p.add_argument("--env", default=None, help="the env where it failed, if env-specific")

    p = add("mark-stable", cmd_mark_stable, "mark a version stable (a rollback target)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    reason_option(p)

    p = add("history", cmd_history, "show a model's history, oldest first")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--env", default=None, help="only this env's events")
    p.add_argument("--since", type=_positive, default=1, metavar="SEQ", help="from this seq on")
    p.add_argument("--limit", type=_non_negative, metavar="N", help="only the last N events")

    p = add("verify", cmd_verify, "check every model's history and artifacts")
    p.add_argument(
        "--repair",
        action="store_true",
        help="remove provable garbage (dead writers' temporaries, old unreferenced artifacts)",
    )
    p.add_argument(
        "--min-age",
        type=_seconds,
        default=3600.0,
        metavar="SECONDS",
        help="with --repair: only remove leftovers older than this (default: 3600)",
    )

    p = add("prune", cmd_prune, "delete the artifacts of old versions (records stay)")
    p.add_argument("name", metavar="NAME")
    p.add_argument(
        "--keep", type=_non_negative, required=True, metavar="N", help="keep the newest N"
    )
    reason_option(p)
    p.add_argument("--dry-run", action="store_true", help="print what would be pruned")

    p = add("delete", cmd_delete, "delete a version that is not deployed (history stays)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("version", metavar="VERSION")
    reason_option(p)
    return parser


def _exit_code(exc: BaseException) -> int:
    for cls, code in _EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return EXIT_ERROR


def _error(message: str) -> None:
    """Print an error as one escaped line on stderr (it may quote stored text)."""
    print(f"{PROG}: error: {_safe(message)}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see ``EPILOG``)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 here, as argparse does
    out = _Out(sys.stdout, as_json=bool(getattr(args, "json", False)))
    func: Command = args.func
    try:
        with _open(args) as reg:
            code = func(reg, args, out)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except _Failure as exc:
        _error(str(exc))
        return exc.code
    except ModelVersionsError as exc:
        _error(str(exc))
        return _exit_code(exc)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except KeyboardInterrupt:
        _error("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
