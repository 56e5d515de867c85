"""Train, version, deploy, detect a regression, roll back: modelversions end to end.

Run it with ``python examples/rollback_demo.py`` (needs scikit-learn: the
``examples`` extra). It uses a new local folder each run (printed at the end) so
you can look at it with ``ls`` or the ``modelversions`` command line afterwards.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelversions import ModelRegistry

NAME = "demo/breast-cancer"


def table(rows: list[list[str]], header: list[str]) -> str:
    """Left-aligned columns, like the command line prints them."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def train(x: np.ndarray, y: np.ndarray, *, c: float, label_noise: float, seed: int):  # type: ignore[no-untyped-def]
    """A scaled logistic regression; ``label_noise`` simulates a broken data pipeline."""
    rng = np.random.default_rng(seed)
    y = y.copy()
    flip = rng.random(len(y)) < label_noise
    y[flip] = 1 - y[flip]
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500)).fit(x, y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", help="registry folder (default: a new temporary folder)")
    args = parser.parse_args()
    location = args.registry or tempfile.mkdtemp(prefix="modelversions-demo-")
    reg = ModelRegistry(location)

    x, y = load_breast_cancer(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, random_state=0)
    x_val, x_holdout, y_val, y_holdout = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=0
    )

    # Three training runs; the third one's labels were corrupted upstream.
    runs = [
        {"c": 0.1, "label_noise": 0.0},
        {"c": 1.0, "label_noise": 0.0},
        {"c": 1.0, "label_noise": 0.45},
    ]
    print(f"registry: {location}\n")
    for i, params in enumerate(runs):
        model = train(x_train, y_train, seed=i, **params)
        accuracy = float(model.score(x_val, y_val))
        mv = reg.save(NAME, model, metrics={"val_accuracy": round(accuracy, 4)}, params=params)
        print(f"saved    {mv.version}  val_accuracy={accuracy:.3f}")
        reg.deploy(NAME, mv.version, reason=f"training run {i + 1}")
        print(f"deployed {mv.version}")

    # Monitoring: the served model against the previous one, on held-out data.
    served = reg.current(NAME)
    assert served is not None
    previous = reg.versions(NAME)[-2]
    served_acc = reg.load(NAME).score(x_holdout, y_holdout)
    previous_acc = reg.load(NAME, previous.version).score(x_holdout, y_holdout)
    print(
        f"\nholdout accuracy: deployed {served.version} = {served_acc:.3f}, "
        f"previous {previous.version} = {previous_acc:.3f}"
    )
    if served_acc < previous_acc - 0.02:
        reason = f"holdout accuracy fell from {previous_acc:.3f} to {served_acc:.3f}"
        restored = reg.rollback(NAME, reason=reason)
        print(f"regression detected -> rolled back to {restored.version}\n")
    else:
        print("no regression\n")

    deployed = reg.current(NAME)
    rows = [
        [
            ("* " if deployed and mv.version == deployed.version else "  ") + str(mv.version),
            mv.status.value,
            f"{mv.metrics.get('val_accuracy', '')}",
            mv.created_at.strftime("%H:%M:%S"),
            mv.sha256[:12],
            mv.failure_reason or "",
        ]
        for mv in reg.versions(NAME)
    ]
    print(table(rows, ["version", "status", "val_acc", "saved", "sha256", "failure"]))
    print()
    hist = [
        [
            str(e.seq),
            e.action,
            str(e.version or ""),
            f"{e.from_version or '-'} -> {e.to_version or '-'}" if e.env else "",
            ", ".join(str(c) for c in e.changes),
            e.reason or "",
        ]
        for e in reg.history(NAME)
    ]
    print(table(hist, ["#", "action", "version", "pointer", "status changes", "reason"]))
    print(f"\nnow serving {reg.current(NAME)}; the registry is in {location}")


if __name__ == "__main__":
    main()
