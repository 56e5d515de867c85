"""The commands: one function per subcommand, each one or two registry calls.

A command takes the open registry, the parsed arguments and where to print, and returns
the exit code. Every rule (what a deploy promotes, what a rollback targets, what prune
keeps) is the library's: a command only calls the public :class:`ModelRegistry` API and
shows what it returns. Library errors propagate to :func:`modelversions.cli.main`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelversions import (
    ForbiddenTransitionError,
    ModelRegistry,
    ModelVersionsError,
    NoRollbackTargetError,
)
from modelversions.cli._output import _error, _Out, _safe
from modelversions.cli._render import (
    _VERSION_HEADERS,
    _dry_run_line,
    _envs_by_version,
    _format_json,
    _format_text,
    _print_versions,
    _report_move,
    _size,
    _version_json,
    _version_row,
    _when,
)
from modelversions.cli._shell import ENV_VAR, EXIT_INTEGRITY, EXIT_OK

if TYPE_CHECKING:  # only verify's report needs modelversions.fsck, imported by verify
    import argparse  # a plain command line is parsed without it (see _parser.parse_args)

    from modelversions import Event, VerifyReport

Command = Callable[[ModelRegistry, "argparse.Namespace", _Out], int]


def _committed(
    reg: ModelRegistry, name: str, start: int, action: str, env: str, version: Any
) -> Event | None:
    """The event a change committed: the first matching one from ``start`` on."""
    for event in reg.history(name, start=start, env=env):
        if event.action == action and event.to_version == version:
            return event
    return None


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


def _save_signature(reg: ModelRegistry, mv: Any) -> dict[str, Any]:
    """Whether the history entry that saved ``mv`` is signed, and by which key id."""
    saves = [e.seq for e in reg.history(mv.name) if e.action == "save" and e.version == mv.version]
    sigs = {s.seq: s for s in reg.signatures(mv.name)}
    found = sigs.get(saves[-1]) if saves else None
    return {"key_id": None, "status": "unsigned"} if found is None else found.to_dict()


def _signature_text(sig: dict[str, Any]) -> str:
    if sig["key_id"] is None:
        return str(sig["status"])
    return f"{sig['status']} (key id {sig['key_id']})"


def cmd_show(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    mv = reg.get(args.name, args.version)
    envs = _envs_by_version(reg, args.name).get(str(mv.version), [])
    signature = _save_signature(reg, mv)
    if out.as_json:
        out.json({**_version_json(mv, envs), **_format_json(mv), "signature": signature})
        return EXIT_OK
    fields = [
        ("name", mv.name),
        ("version", str(mv.version)),
        ("status", mv.status.value),
        ("deployed in", ", ".join(envs) or "-"),
        ("created", _when(mv.created_at) + " UTC"),
        ("sha256", mv.sha256),
        ("size", f"{_size(mv.size)} ({mv.size} bytes)"),
        ("format", _format_text(mv)),
        ("pruned", "yes (artifact deleted)" if mv.pruned else "no"),
        ("signature", _signature_text(signature)),
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
        sigs = {s.seq: s.to_dict() for s in reg.signatures(args.name)} if events else {}
        out.json([{**e.to_dict(), "signature": sigs.get(e.seq)} for e in events])
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


def cmd_attest(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    event = reg.attest(args.name)
    sig = {s.seq: s for s in reg.signatures(args.name)}[event.seq]
    if out.as_json:
        out.json({**event.to_dict(), "signature": sig.to_dict()})
    else:
        out.line(
            f"attested {args.name}: entries 1..{event.seq - 1} are covered by entry "
            f"{event.seq}, signed with key id {sig.key_id}"
        )
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


def cmd_ui(reg: ModelRegistry, args: argparse.Namespace, out: _Out) -> int:
    """Serve the read-only web view until interrupted (see docs/ui.md)."""
    from modelversions.ui import ViewServer, is_loopback  # only this command needs it

    if not is_loopback(args.host):
        print(
            f"modelversions: warning: serving on {_safe(args.host)}, which is not loopback: "
            "the view has no authentication; anyone who can reach it can read the registry",
            file=sys.stderr,
        )
    location = getattr(args, "registry", None) or os.environ.get(ENV_VAR)
    server = ViewServer(reg, args.host, args.port, location=location)
    out.line(f"modelversions ui: serving {server.url} (read-only; Ctrl-C to stop)")
    out.stream.flush()
    threading.Thread(target=server.warm, name="modelversions-ui-warm", daemon=True).start()
    if args.open:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK
