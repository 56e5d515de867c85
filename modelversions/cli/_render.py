"""How versions and events read on the terminal: table rows, cells, JSON shapes.

Shared by the commands that show versions (``list``, ``current``) and those that
report a deploy or rollback, planned (``--dry-run``) or committed. Reads the registry
only through its public API (the envs a version is deployed in, a replaced version's
status); prints only through :class:`~modelversions.cli._output._Out`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from modelversions import Event, ModelRegistry, ModelVersion, ModelVersionsError
from modelversions._util import timezone  # datetime's, without importing datetime.py
from modelversions.cli._output import _Out
from modelversions.serializers import PATH_FORMAT, get_serializer

if TYPE_CHECKING:
    from datetime import datetime


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


def _runs_pickle(mv: ModelVersion) -> bool | None:
    """Whether loading ``mv`` runs pickled code (None: its serializer is not installed)."""
    if mv.format == PATH_FORMAT:
        return False
    try:
        return get_serializer(mv.format).runs_code
    except ModelVersionsError:
        return None


def _format_text(mv: ModelVersion) -> str:
    """``show``'s format line: the format, what it holds, whether loading runs code."""
    info = mv.format_info
    if mv.format == PATH_FORMAT:
        what = f"{info.get('kind', '?')}, {info.get('files', '?')} files"
        if isinstance(info.get("bytes"), int):
            what += f", {_size(info['bytes'])}"
        return f"path ({what}); load_path() returns it, no code runs"
    extra = f", compress={info['compress']}" if info.get("compress") else ""
    runs = _runs_pickle(mv)
    if runs is None:
        return f"{mv.format}{extra} (serializer not installed here)"
    return f"{mv.format}{extra} ({'loading runs pickled code' if runs else 'no code runs on load'})"


def _version_json(mv: ModelVersion, envs: Sequence[str]) -> dict[str, Any]:
    return {**mv.to_dict(), "envs": list(envs)}


def _format_json(mv: ModelVersion) -> dict[str, Any]:
    """``show --json``'s format fields (``to_dict`` leaves out the joblib defaults)."""
    info = mv.to_dict().get("format_info", {})
    return {"format": mv.format, "format_info": info, "runs_pickled_code": _runs_pickle(mv)}


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
