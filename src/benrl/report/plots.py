"""The report's figures (matplotlib, Agg backend), saved as PNG files.

Each function takes plain data (from results.json or the run folder) and a path, and
writes one figure; the report links them from report.md and inlines them in
report.html, so the page stays one self-contained file.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


SPLIT_STYLE = {"ood": ("out of distribution", "C0"), "in_distribution": ("in distribution", "C1")}


def category_plot(effects: dict, path: Path) -> Path:
    """The report's summary figure: one comparison's mean difference per eval category
    (pp, with the CI `effects["ci"]` names), OOD and in-distribution evals side by side.

    `effects` is results.json's category_effects; each row is drawn as a dot with its CI
    as a whisker, the two distributions offset within a category's row.
    """
    rows = effects["rows"]
    categories = sorted({r["category"] for r in rows})
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(categories) + 1.6))
    for offset, (split, (label, colour)) in zip((-0.15, 0.15), SPLIT_STYLE.items(), strict=True):
        mine = [r for r in rows if r["distribution"] == split]
        if not mine:
            continue
        y = [categories.index(r["category"]) + offset for r in mine]
        x = [100 * r["diff"] for r in mine]
        err = [
            [100 * (r["diff"] - r["ci_low"]) for r in mine],
            [100 * (r["ci_high"] - r["diff"]) for r in mine],
        ]
        ax.errorbar(x, y, xerr=err, fmt="o", ms=4, capsize=2, color=colour, label=label)
        for xi, yi, r in zip(x, y, mine, strict=True):
            ax.annotate(
                str(r["evals"]),
                (xi, yi),
                xytext=(4, 3),
                textcoords="offset points",
                fontsize=6,
                color=colour,
            )
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(categories)), categories, fontsize=8)
    ax.invert_yaxis()
    model, against = effects["comparison"].split("_vs_", 1)
    ax.set_xlabel(f"{model} - {against}: mean difference over the category's evals (pp, 95% CI)")
    ax.set_title("by eval category (numbers: evals in the mean)", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def forest_plot(evals: list[dict], categories: dict[str, str], path: Path) -> Path:
    """Per-eval difference (pp) with its 95% CI, one colour per category."""
    names = sorted({categories.get(e["eval"], "other") for e in evals})
    colours = {c: plt.cm.tab20(i % 20) for i, c in enumerate(names)}
    fig, ax = plt.subplots(figsize=(8, 0.2 * len(evals) + 1.5))
    for y, e in enumerate(evals):
        c = e["comparison"]
        low, high = 100 * (c["diff"] - c["ci_low"]), 100 * (c["ci_high"] - c["diff"])
        cat = categories.get(e["eval"], "other")
        ax.errorbar(
            100 * c["diff"], y, xerr=[[low], [high]], fmt="o", ms=3, color=colours[cat], label=cat
        )
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=6, loc="lower right")
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_yticks(range(len(evals)), [e["eval"] for e in evals], fontsize=6)
    ax.set_xlabel(f"{evals[0]['model']} - {evals[0]['against']} (pp, 95% CI)")
    return _save(fig, path)


def training_curves(logs: dict[str, list[dict]], path: Path) -> Path:
    """Reward by source, KL and the share of all-equal groups per step, one line per arm."""
    keys = [
        ("rewards/reward_trait/mean", "trait reward"),
        ("rewards/reward_task/mean", "task reward"),
        ("kl", "KL to the starting model"),
        ("frac_reward_zero_std", "share of all-equal groups"),
        ("completions/mean_length", "completion length"),
    ]
    fig, axes = plt.subplots(1, len(keys), figsize=(17, 3))
    for ax, (key, title) in zip(axes, keys, strict=True):
        for arm, rows in logs.items():
            points = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), int | float)]
            if points:
                ax.plot(*zip(*points, strict=True), label=arm, lw=1)
        if not ax.lines:  # e.g. KL, which TRL computes only when train.beta > 0
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
    axes[1].legend(fontsize=7)  # every arm has a task reward; baseline has no trait reward
    return _save(fig, path)


def dose_curves(
    curves: dict[str, dict[str, list[tuple[int, float, float]]]],
    path: Path,
    floor: dict[str, dict] | None = None,
) -> Path:
    """Harmful fine-tuning: mean score per dose (with SE) per model, one panel per group;
    doses on a symmetric log axis (a geometric ladder), the floor as a dashed line."""
    groups = sorted({g for by_group in curves.values() for g in by_group})
    fig, axes = plt.subplots(
        1, max(1, len(groups)), figsize=(5 * max(1, len(groups)), 3), squeeze=False
    )
    for ax, group in zip(axes[0], groups, strict=False):
        for model, by_group in curves.items():
            points = by_group.get(group, [])
            if points:
                doses, means, ses = zip(*points, strict=True)
                ax.errorbar(doses, means, yerr=ses, label=model, marker="o", ms=3, lw=1)
        if floor and group in floor:
            ax.axhline(floor[group]["mean"], color="grey", ls="--", lw=1, label="floor")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("harmful fine-tuning steps", fontsize=8)
        ax.set_ylabel("mean score", fontsize=8)
        ax.legend(fontsize=7)
    return _save(fig, path)


# --- trait directions ---------------------------------------------------------------


def directions_plot(results: dict, path: Path) -> Path:
    """The directions figure: quality, projections per model, snapshots and doses.

    Panels: held-out separation by layer; mean projection per probe for each model (a
    heatmap); projection along RL snapshots and harmful fine-tuning doses when present.
    """
    quality, models = results["quality"], results["track"]["models"]
    probes = quality["probes"]
    series = [
        (kind, key)
        for kind, key in (("snapshot", "step"), ("dose", "dose"))
        if any(r["kind"] == kind for r in models.values())
    ]
    fig, axes = plt.subplots(
        2 + len(series), 1, figsize=(9, 3.2 * (2 + len(series))), constrained_layout=True
    )
    _plot_separation(axes[0], quality)
    _plot_heatmap(axes[1], {m: r for m, r in models.items() if r["kind"] == "model"}, probes)
    for ax, (kind, key) in zip(axes[2:], series, strict=True):
        _plot_series(ax, models, probes, kind, key)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
    return path


def _plot_separation(ax, quality: dict) -> None:
    layers = quality["layers"]
    for probe in quality["probes"]:
        ax.plot(layers, quality["separation"][probe], color="grey", alpha=0.3)
    ax.plot(layers, quality["separation_by_layer"], "k-o", label="mean over probes")
    ax.axhline(0.5, ls=":", color="grey")
    ax.set(
        xlabel="layer (0: token embeddings, the lexical baseline)",
        ylabel="held-out separation",
        ylim=(0, 1.02),
        xticks=layers,
        title="direction quality: good projects above bad (eval templates; grey: each probe)",
    )
    ax.legend(loc="lower right")


def _plot_heatmap(ax, models: dict[str, dict], probes: list[str]) -> None:
    values = np.array([[row["projection"][p] for p in probes] for row in models.values()])
    image = ax.imshow(values, aspect="auto", cmap="coolwarm")
    ax.set_xticks(range(len(probes)), probes, rotation=45, ha="right")
    ax.set_yticks(range(len(models)), list(models))
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=7)
    ax.set_title("mean projection on each probe's direction (last prompt token)")
    ax.figure.colorbar(image, ax=ax)


def _plot_series(ax, models: dict[str, dict], probes: list[str], kind: str, key: str) -> None:
    bases = sorted({r["model"] for r in models.values() if r["kind"] == kind})
    for i, base in enumerate(bases):
        colour = f"C{i % 10}"
        rows = sorted(
            ((r[key], r) for r in models.values() if r["kind"] == kind and r["model"] == base),
            key=lambda xr: xr[0],
        )
        # Step 0 of an arm is the pre model; dose 0 of a ladder is the model itself.
        start = "pre" if kind == "snapshot" else base
        if start in models and rows[0][0] != 0:
            rows = [(0, models[start]), *rows]
        xs = [x for x, _ in rows]
        for p in probes:
            ax.plot(xs, [r["projection"][p] for _, r in rows], color=colour, alpha=0.25, lw=0.8)
        mean = [np.mean([r["projection"][p] for p in probes]) for _, r in rows]
        ax.plot(xs, mean, "-o", color=colour, lw=2, label=f"{base} (mean over probes)")
    label = "RL step" if kind == "snapshot" else "harmful fine-tuning steps (dose)"
    ax.set(xlabel=label, ylabel="projection", title=f"projection along {label} (thin: each probe)")
    ax.legend(fontsize=8)
