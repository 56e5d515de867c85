"""The chart: ``docs/benchmarks.png``, every target's ratio against its goal.

Owns the figure (matplotlib, Agg backend): one panel per group of targets (speed-up over
MLflow on a log scale, cost against the floor, share of a budget), bars green when met
and red when missed, a black tick at each goal. Skipped when matplotlib is missing.
"""

from __future__ import annotations

from .harness import Config, Results, log


def write_chart(cfg: Config, res: Results) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator
    except ImportError:
        log("matplotlib is not installed: no chart")
        return False
    groups = [
        ("mlflow", "Speed-up over MLflow (x, higher is better)", "log"),
        ("floor", "Cost against plain joblib or the import, or 10,000 vs 10 versions\n"
                  "(x, lower is better)",
         "linear"),
        ("budget", "Share of the budget used (lower is better)", "linear"),
    ]  # fmt: skip
    present = [g for g in groups if any(t.group == g[0] for t in res.targets)]
    counts = [sum(t.group == g[0] for t in res.targets) for g in present]
    heights = [0.38 * n + 0.9 for n in counts]
    fig, axes = plt.subplots(
        len(present),
        1,
        figsize=(10, sum(heights) + 0.5),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
    )
    for ax, (group, title, scale) in zip(axes[:, 0], present, strict=True):
        rows = [t for t in res.targets if t.group == group][::-1]
        y = list(range(len(rows)))
        colors = ["#2e7d32" if t.met else "#c62828" for t in rows]
        ax.barh(y, [t.value for t in rows], color=colors, height=0.62)
        hi = max(max(t.value for t in rows), max(t.goal for t in rows))
        for i, t in enumerate(rows):
            ax.plot([t.goal, t.goal], [i - 0.42, i + 0.42], color="black", linewidth=2.2)
            label = t.value_text if group != "budget" else f"{t.value_text} of {t.goal_text[2:]}"
            if group == "budget":
                x = max(t.value, t.goal) + hi * 0.02
            elif scale == "log":
                near = abs(t.value / t.goal - 1) < 0.25
                x = (max(t.value, t.goal) if near else t.value) * 1.06
            else:
                near = abs(t.value - t.goal) < hi * 0.06
                x = (max(t.value, t.goal) if near else t.value) + hi * 0.012
            ax.text(x, i, label, va="center", fontsize=8)
        ax.set_yticks(y)
        ax.set_yticklabels([t.title for t in rows], fontsize=8)
        ax.set_title(title, fontsize=10, loc="left")
        if scale == "log":
            ax.set_xscale("log")
            lo = min(min(t.value for t in rows), min(t.goal for t in rows))
            ax.set_xlim(max(lo / 1.5, 0.5), hi * 2.5)
            ticks = [x for x in (1, 2, 5, 10, 20, 50, 100, 200) if lo / 1.5 <= x <= hi * 2.5]
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xticklabels([f"{x}x" for x in ticks], fontsize=8)
        else:
            ax.set_xlim(0, hi * (1.7 if group == "budget" else 1.3))
            ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.text(
        0.01,
        0.005,
        "Black tick: the target. Green: met, red: missed. Each ratio compares medians "
        "measured in the same run.",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    cfg.chart.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(cfg.chart, dpi=110)
    plt.close(fig)
    return True
