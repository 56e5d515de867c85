"""Files and folders as versions: a folder of many small files, and a 1 GB file.

Run ``python benchmarks/bench_formats.py`` (about a minute) or ``--quick`` (seconds).

* A folder of 2,000 small files (1-8 KiB, in 40 sub-folders): ``save(path=...)`` into a
  local registry (durable: every file fsynced) against ``shutil.copytree`` of the same
  tree followed by an fsync of every file and folder (the floor for a durable copy);
  ``load_path`` the first time (every file copied out of storage and hashed) and again
  (every file checked against the manifest: unchanged files are not re-hashed) against
  a plain ``shutil.copytree``. Contenders alternate; medians of the rounds.
* A 1 GB file: ``save(path=...)`` in a fresh subprocess; the peak resident memory
  (``ru_maxrss``) above the process's baseline after imports.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from modelversions import ModelRegistry  # noqa: E402


def make_tree(root: Path, files: int) -> Path:
    top = root / "tree"
    rng = __import__("random").Random(0)
    for i in range(files):
        sub = top / f"d{i % 40:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 8192)))
    return top


def copytree_fsync(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst)
    for dirpath, _dirs, names in os.walk(dst):
        for name in names:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        fd = os.open(dirpath, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def small_files(files: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        src = make_tree(tmp_path, files)
        save, copy, first, again, plain = [], [], [], [], []
        for r in range(rounds):
            reg = ModelRegistry(tmp_path / f"reg{r}", cache_dir=tmp_path / f"cache{r}")
            save.append(timed(partial(reg.save, "m", path=src)))
            copy.append(timed(partial(copytree_fsync, src, tmp_path / f"copy{r}")))
            first.append(timed(partial(reg.load_path, "m", "1.0.0")))
            again.append(timed(partial(reg.load_path, "m", "1.0.0")))
            plain.append(timed(partial(shutil.copytree, src, tmp_path / f"plain{r}")))
            reg.close()
        med = statistics.median
        print(f"{files} small files, {rounds} rounds (medians)")
        print(f"  save(path=)            {med(save):7.3f} s")
        print(f"  copytree + fsync       {med(copy):7.3f} s   ratio {med(save) / med(copy):.2f}")
        print(f"  load_path, first       {med(first):7.3f} s")
        print(f"  load_path, again       {med(again):7.3f} s")
        ratio = med(first) / med(plain)
        print(f"  copytree (no fsync)    {med(plain):7.3f} s   ratio first {ratio:.2f}")


_CHILD = r"""
import os, resource, sys
from modelversions import ModelRegistry
reg = ModelRegistry(sys.argv[2])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reg.save("big", path=sys.argv[1])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak)
"""


def big_file(size: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.bin"
        chunk = os.urandom(4 * 1024 * 1024)
        with open(path, "wb") as fh:
            for _ in range(size // len(chunk)):
                fh.write(chunk)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(Path(tmp) / "reg")],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.split()
        took = time.perf_counter() - t
        base, peak = (int(x) / 1024 for x in out)
        print(
            f"{size / 2**30:.2f} GiB file: save(path=) {took:.2f} s (with process start); "
            f"peak RSS {peak:.1f} MiB, baseline {base:.1f} MiB, "
            f"above baseline {peak - base:.1f} MiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    small_files(200 if args.quick else 2000, 1 if args.quick else 5)
    big_file(64 * 2**20 if args.quick else 2**30)


if __name__ == "__main__":
    main()
