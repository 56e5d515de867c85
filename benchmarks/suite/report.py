"""The report: ``docs/benchmarks.md`` from one run's results.

Owns the Markdown: headline ratios, the targets table, why each missed target is missed
(``explain``, with this run's figures), every series (median, min, max, n), notes, what
keeps it fast, the machine (``machine``: CPU, memory, disk, packages) and how to rerun.
Measures nothing; the chart next to it is ``chart.py``.
"""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

from .cold import cold_table
from .harness import Config, Results, Target
from .signing import signing_section


def machine(cfg: Config) -> dict[str, str]:
    info: dict[str, str] = {}
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    fs = "unknown"
    with contextlib.suppress(OSError):
        best = ""
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if (
                len(parts) > 2
                and str(cfg.workdir).startswith(parts[1])
                and len(parts[1]) > len(best)
            ):
                best, fs = parts[1], f"{parts[2]} on {parts[0]}"
    info["CPU"] = f"{cpu}, {len(os.sched_getaffinity(0))} cores (nproc)"
    info["memory"] = mem
    info["disk"] = fs
    info["OS"] = f"{platform.system()} {platform.release()}"
    info["Python"] = platform.python_version()
    vers = versions_of(["joblib", "numpy", "scikit-learn", "mlflow", "matplotlib"])
    info["packages"] = ", ".join(f"{k} {v}" for k, v in vers.items())
    return info


def versions_of(packages: list[str]) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


DESIGN = (
    "Every change is one small JSON entry created with an atomic create-if-absent: "
    "write a temporary, fsync, link into place, fsync the folder. Two fsyncs, no lock, "
    "no database; the registry applies its own entry in memory after one probe for "
    "entries other writers added.",
    "A registry object keeps each model's state and only probes for entries written "
    "since; a fresh one starts from the newest snapshot (one every 16 entries; one of a "
    "large model leaves its unchanged blocks of records in an older snapshot) and "
    "replays the rest, so rollback and listing cost the same at 10 and 10,000 versions.",
    "A save streams joblib's output into a temporary file; a helper thread hashes the "
    "bytes behind the writer through a small mapping of the page cache, and finishes "
    "while the file is fsync'd. No chunk is held for the hash, so peak memory stays "
    "joblib's.",
    "A load hashes the file before unpickling (reading it in bounded chunks, never "
    "twice into memory; `mmap_mode='r'` then maps the arrays). Files verified once are "
    "remembered by inode, size, mtime and ctime, so loading them again costs what "
    "joblib.load costs.",
    "`import modelversions` imports neither joblib nor numpy; they load on the first save or load.",
)


def write_report(cfg: Config, res: Results, info: dict[str, str], elapsed: float) -> None:
    lines: list[str] = []
    add = lines.append
    met = sum(t.met for t in res.targets)
    add("# Benchmarks")
    add("")
    add(
        "modelversions against the floor (plain `joblib`, which does no bookkeeping at all) "
        "and against MLflow's embedded registry (sqlite store, local artifacts), measured "
        "in one run of `python benchmarks/run.py` on the machine described below."
    )
    if cfg.quick:
        add("")
        add(
            "**Quick mode** (`--quick`): tiny sizes and few repeats, a smoke test of the "
            "benchmark itself. These figures are not meaningful."
        )
    if cfg.mlflow is None:
        add("")
        add("MLflow was not measured in this run (not installed, `--quick` or `--no-mlflow`).")
    add("")
    summary = headline(res)
    if summary:
        add("In this run: " + "; ".join(summary) + ".")
    add("")
    add(f"![ratios against each target]({cfg.chart.name})")
    add("")
    add(f"## Targets: {met} of {len(res.targets)} met")
    add("")
    add(
        "Each ratio compares two medians measured in the same run; the figures column gives "
        "each median with its min, max and number of samples."
    )
    add("")
    add("| target | goal | measured | met | figures |")
    add("| --- | --- | --- | --- | --- |")
    for t in res.targets:
        detail = t.detail + (f"; {t.note}" if t.note else "")
        add(
            f"| {t.title} | {t.goal_text} | {t.value_text} | {'yes' if t.met else '**no**'} "
            f"| {detail} |"
        )
    missed = [t for t in res.targets if not t.met]
    if missed:
        add("")
        add("### Why the missed targets are missed")
        add("")
        for t in missed:
            add(f"- **{t.title}** ({t.value_text}, goal {t.goal_text}): {explain(t, res)}")
    table = cold_table(cfg, res)
    if table:
        add("")
        add("## Cold start: fresh processes")
        add("")
        add(
            "Each sample is a new `python -c` process on a registry of that many versions "
            "(the deployed version a small scikit-learn model): `op` is the time from "
            "opening the registry (`ModelRegistry(path)`; `MlflowClient(...)`) to the "
            "answer, imports excluded; `whole process` is the wall time the parent "
            "measured, interpreter start and imports included. Median (min - max)."
        )
        add("")
        lines.extend(table)
    add("")
    add("## All figures")
    add("")
    add(
        "Median of all samples, then min and max; n is the number of samples. Contenders "
        "alternated within each scenario."
    )
    add("")
    add("| scenario | contender | median | min | max | n |")
    add("| --- | --- | --- | --- | --- | --- |")
    for s in res.series.values():
        add(
            f"| {s.scenario} | {s.contender} | {s.fmt()} | {s.fmt(min(s.samples))} "
            f"| {s.fmt(max(s.samples))} | {len(s.samples)} |"
        )
    add("")
    add("## Notes")
    add("")
    for key in sorted(res.facts):
        add(
            f"- {res.facts[key]}"
            if key != "importtime"
            else "- Largest self times under `python -X importtime -c 'from modelversions "
            f"import ModelRegistry'` (modules `python -c pass` does not load): "
            f"{res.facts[key]}."
        )
    for texts in res.notes.values():
        for text in texts:
            add(f"- {text}")
    add("")
    add("## What keeps it fast")
    add("")
    for text in DESIGN:
        add(f"- {text}")
    add("")
    lines.extend(signing_section(res))
    add(FORMATS_SECTION)  # measured by benchmarks/bench_formats.py, not by this run
    add("## Machine")
    add("")
    for key, value in info.items():
        add(f"- {key}: {value}")
    add(f"- whole run: {elapsed:.0f} s")
    add("")
    add("## How to rerun")
    add("")
    add("```bash")
    add("python -m pip install -e '.[bench]'   # MLflow, matplotlib, scikit-learn, numpy")
    add("python benchmarks/run.py              # writes docs/benchmarks.md and docs/benchmarks.png")
    add("python benchmarks/run.py --help       # --quick, --no-mlflow, --sizes, --output, ...")
    add("```")
    add("")
    add(
        "Method: each scenario alternates its contenders (A, B, C, A, B, C, ...), so a change "
        "in machine load hits all of them; large artifacts are timed after a warm-up that "
        "touches fresh memory and flushes dirty pages (`os.sync`); peak memory is the "
        "peak resident set (`VmHWM`) of a fresh process doing one save or one load, which "
        "imports the same modules (joblib, numpy) before its baseline. MLflow runs with "
        "`MLFLOW_DISABLE_TELEMETRY=true`, `DO_NOT_TRACK=true` and explicit "
        '`pip_requirements`, saving with `serialization_format="pickle"`. Every '
        "modelversions registry here is a local folder with `durable=True` (the default: "
        "every change is fsync'd before the call returns), except the rows named "
        "`durable=False` and where a note says the set-up used `durable=False` to build "
        "large registries quickly."
    )
    add("")
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    cfg.output.write_text("\n".join(lines))


def headline(res: Results) -> list[str]:
    """The few ratios a reader wants first."""
    out = []
    for scen, ours, other, text in (
        (
            "small save",
            "modelversions",
            "MLflow",
            "a small model saved {r:.0f}x faster than MLflow's run + log_model + register",
        ),
        (
            "small save",
            "modelversions",
            "MLflow, save_model + create_model_version",
            "{r:.1f}x faster than its lightest path (save_model + create_model_version)",
        ),
        ("rollback", "modelversions", "MLflow", "rollback {r:.0f}x faster than MLflow's by hand"),
        (
            "resolve + load",
            "modelversions (warm registry)",
            "MLflow",
            "the deployed model resolved and loaded {r:.0f}x faster than MLflow",
        ),
    ):
        a, b = res.get(scen, ours), res.get(scen, other)
        if a and b:
            out.append(text.format(r=b.median / a.median))
    for t in res.targets:
        if t.title.startswith("save") and "MB" in t.title:
            out.append(f"a {t.title.split()[1]} MB model saved at {t.value:.2f}x joblib.dump+fsync")
        if t.title.startswith("load") and "repeated" in t.title and "MB" in t.title:
            out.append(f"loaded again at {t.value:.2f}x joblib.load")
        if t.title.startswith("import"):
            out.append(f"`import modelversions` costs {t.value_text}")
        if t.title.startswith("from modelversions import"):
            out.append(f"`from modelversions import ModelRegistry` costs {t.value_text}")
    return out


def explain(t: Target, res: Results) -> str:
    """Why a target is missed, with this run's figures."""
    speed = res.facts.get("sha256 speed", "")
    size = " ".join(t.title.split()[1:3])  # "100 MB", "1 GB"
    if t.title.startswith("load") and "sha256 verified" in t.title:
        scen = f"load {size}" + (" from disk" if "from disk" in t.title else "")
        load = res.get(scen, "joblib.load")
        sha = res.get(f"load {size}", "sha256 of the file alone")
        warm = res.get(f"load {size}", "joblib.load")
        if load is None or sha is None or warm is None:
            return "figures missing."
        if "from disk" in t.title:
            bound = (max(sha.median, load.median) + warm.median) / load.median
            return (
                f"`joblib.load` reads this file from the disk in {load.fmt()}, faster than "
                f"sha256 can hash it ({sha.fmt()}; {speed}). The verified load reads and "
                "hashes (the disk read overlaps the hash through the kernel's read-ahead), "
                f"then unpickles from the page cache ({warm.fmt()}): at best "
                f"max(read, hash) + load = {bound:.2f}x here. On a disk slower than the "
                "hash (most SSDs and every network disk) the ratio falls towards 1x."
            )
        bound = (sha.median + load.median) / load.median
        return (
            "the artifact's sha256 is checked before anything is unpickled (a damaged or "
            "swapped file must never run: unpickling executes code), so every byte is "
            f"hashed before `joblib.load` starts. Hashing the file alone takes {sha.fmt()} "
            f"({speed}), against {load.fmt()} for the whole `joblib.load` of a file already "
            f"in the page cache: hash + load is {bound:.2f}x, the lower bound for any "
            "verify-then-load design (sha256 cannot be split across cores). Every later "
            "load of the unchanged file skips the hash (a memo of verified files keyed by "
            "inode, size, mtime and ctime) and runs at joblib's speed: see the `repeated` "
            "row."
        )
    if t.title.startswith("save") and "joblib.dump" in t.title:
        ours = res.get(f"save {size}", "modelversions")
        sha = res.get(f"load {size}", "sha256 of the file alone")
        floor = res.get(f"save {size}", "joblib.dump+fsync")
        if ours is None or sha is None or floor is None:
            return "figures missing."
        return (
            f"the save hashes every byte ({sha.fmt()} of CPU on its own; {speed}) in a "
            "helper thread that reads the file behind joblib's writes and finishes while the "
            f"file is fsync'd; with both cores free it ends close to joblib.dump+fsync "
            f"({floor.fmt()}), but it needs the second core: other load on the machine "
            f"(load average in Machine below) delays it (median {ours.fmt()}, min "
            f"{ours.fmt(min(ours.samples))} against a floor min of "
            f"{floor.fmt(min(floor.samples))})."
        )
    if t.title.startswith(("deploy", "mark_failed", "rollback")) and "MLflow" in t.title:
        op = t.title.split()[0]
        ours = res.get(op, "modelversions")
        bare = res.get("durable commit", "write+fsync+link+fsync folder")
        if ours is None or bare is None:
            return "figures missing."
        return (
            f"a change is one history entry made durable before the call returns: write a "
            "temporary, fsync it, link it into place, fsync the folder. That sequence "
            f"alone takes {bare.fmt()} here (`durable commit` row); the call takes "
            f"{ours.fmt()}. MLflow's sqlite store also syncs each transaction, so when fsync "
            "is slow (a busy disk) both converge and the ratio shrinks; the figures are "
            "from one run, alternating."
        )
    if t.title.startswith("resolve + load (fresh"):
        ours = res.get("resolve + load", "modelversions (fresh registry)")
        warm = res.get("resolve + load", "modelversions (warm registry)")
        if ours is None or warm is None:
            return "figures missing."
        return (
            "a fresh registry first reads the model's newest snapshot (one every 16 history "
            "entries for a model of this size) and replays the entries written after it, "
            "each a small file to open, "
            "parse and apply (20 to 30 us each: see the `fresh registry, resolve + load` "
            "rows), then loads as a "
            f"warm registry does ({warm.fmt()} here); median {ours.fmt()}. "
            + res.hidden.get("replayed", "")
            + " The cost moves between about the warm figure and that plus 15 entries' "
            "replay as the history grows."
        )
    return more_explanations(t, res)


def more_explanations(t: Target, res: Results) -> str:
    """Why a target is missed: the lightest MLflow path, the cold start, the import."""
    if "save_model + create_model_version" in t.title:
        ours = res.get("small save", "modelversions")
        fast = res.get("small save", "modelversions, durable=False")
        bare = res.get("durable commit", "write+fsync+link+fsync folder")
        light = res.get("small save", "MLflow, save_model + create_model_version")
        if ours is None or fast is None or bare is None or light is None:
            return spans(t)
        return (
            f"a save makes the artifact and the history entry durable (fsync of each file "
            f"and folder) before it returns ({ours.fmt()}; a bare durable create, write + "
            f"fsync + link + fsync of the folder, measured {bare.fmt()} in the lifecycle "
            "loop); MLflow's lightest path fsyncs no artifact (see Durability in Notes). "
            f"Without fsync (`durable=False`) the save takes {fast.fmt()}, "
            f"{light.median / fast.median:.1f}x faster than that path. " + spans(t)
        )
    if t.title.startswith("cold ") and " vs " in t.title and "versions (fresh" in t.title:
        op = t.title.split()[1]
        steps = [
            (k[0].rsplit("@ ", 1)[1], s)
            for k, s in res.series.items()
            if k[0].startswith(f"cold {op} @ ") and k[1] == "modelversions, op (imports excluded)"
        ]
        grows = ", ".join(f"{s.fmt()} at {n}" for n, s in steps)
        return (
            f"the operation's own time (imports excluded) grows with the history: {grows} "
            f"versions. {t.note}."
        )
    if t.title.startswith(("cold resolve + load", "CLI")):
        count = t.title.split(" at ")[1].split()[0]
        load = res.get(f"cold load @ {count}", "modelversions, op (imports excluded)")
        floor = res.get(f"cold load @ {count}", "joblib.load, op (imports excluded)")
        current = res.get(f"cold current @ {count}", "modelversions, op (imports excluded)")
        if load is None or floor is None or current is None:
            return spans(t)
        work = (
            f"opening the registry and resolving take {current.fmt()} (`current` op), "
            f"resolve + verify + load {load.fmt()} against {floor.fmt()} for joblib.load "
            "alone (imports excluded); the rest of each process is interpreter start-up "
            "and imports (see the import rows). "
        )
        return work + spans(t)
    if t.title.startswith(("import modelversions", "from modelversions")):
        own = next(
            (s for k, s in res.series.items() if k[1].startswith("-X importtime: modelversions")),
            None,
        )
        where = f"`-X importtime` counts {own.fmt()} for `import modelversions`; " if own else ""
        return (
            f"the package's own imports cost more than the budget: {where}the largest self "
            "times are listed under Notes. " + spans(t)
        )
    return spans(t)


def spans(t: Target) -> str:
    """The two figures behind a ratio, and whether their ranges overlap."""
    if len(t.series) != 2:
        return f"{t.detail}."
    a, b = t.series
    overlap = min(a.samples) <= max(b.samples) and min(b.samples) <= max(a.samples)
    return f"{a.contender}: {a.span()}; {b.contender}: {b.span()}. " + (
        "The two ranges overlap: part of the gap is this run's noise."
        if overlap
        else "The two ranges do not overlap: the gap is not noise."
    )


# Figures of benchmarks/bench_formats.py (run separately); update them with it.
_FORMATS_ROWS = (
    (
        "2,000 small files (1-8 KiB, 40 folders): `save(path=...)`",
        "1.74 s",
        "`shutil.copytree` + fsync of every file and folder: 2.34 s",
        "0.74",
    ),
    (
        "same tree: `load_path`, first call (copied out of storage, hashed)",
        "0.75 s",
        "`shutil.copytree` (no fsync): 0.71 s",
        "1.06",
    ),
    ("same tree: `load_path` again (checked against the manifest)", "0.07 s", "", ""),
    (
        "1 GiB file: `save(path=...)` peak memory",
        "1.0 MiB above the process's baseline (30.9 MiB peak)",
        "bound: 64 MiB",
        "",
    ),
)
FORMATS_SECTION = "\n".join(
    [
        "## Files and folders",
        "",
        "Measured separately by `python benchmarks/bench_formats.py` (2 CPUs, ext4, local folder",
        "registry with `durable=True`; medians of 5 alternating rounds); see",
        "[Formats](formats.md).",
        "",
        "| scenario | modelversions | floor | ratio |",
        "| --- | --- | --- | --- |",
        *("| " + " | ".join(row) + " |" for row in _FORMATS_ROWS),
        "",
        "The save is faster than the sequential copy because small files are written by 8",
        "threads whose fsyncs overlap; each file still gets its own fsync before the manifest",
        "and then the version are committed.",
        "",
    ]
)
