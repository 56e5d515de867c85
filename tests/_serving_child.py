"""A serving process for ``test_serving.py``: follow a model, report each swap on stdout.

Run as ``python tests/_serving_child.py LOCATION OPTIONS_JSON NAME REFRESH``. It prints
``ready <version> <monotonic time>`` once the deployed version is loaded, then
``swap <version> <monotonic time>`` after each swap (from ``on_change``), and stops
when its stdin closes. ``time.monotonic()`` is one clock for every process of a Linux
machine, so the parent can compare its own times with these.
"""

from __future__ import annotations

import json
import sys
import time

from modelversions import ModelRegistry, ModelVersion


def main(location: str, options: str, name: str, refresh: float) -> None:
    reg = ModelRegistry(location, storage_options=json.loads(options) or None)

    def report(old: ModelVersion | None, new: ModelVersion) -> None:
        kind = "ready" if old is None else "swap"
        print(f"{kind} {new.version} {time.monotonic()}", flush=True)

    with reg.serve(name, refresh=refresh, on_change=report):
        sys.stdin.read()  # until the parent closes our stdin


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]))
