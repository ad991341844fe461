"""report.md: the results rendered as markdown, one function per section.

Each section function takes the part of results.json it shows and returns its lines,
starting with its "## " heading; `report_markdown` puts them in order with a blank line
between. Rendering only: every number here was computed in results.py or paper.py.
"""

from __future__ import annotations

from benrl.evaluation.registry import clusters, registered_evals
from benrl.report.directions_section import directions_section
from benrl.report.results import stage_totals
from benrl.report.tables import fmt as _fmt
from benrl.report.tables import table as _table


def report_markdown(
    results: dict,
    main: dict,
    scores: dict,
    refusals: dict,
    arms: list[str],
    figures: dict[str, str],
) -> str:
    """The whole report.md: title, then every section in order (the organism's if carded)."""
    sections = [
        headline_section(results, figures),
        failures_section(results.get("judge_failures", {}), results.get("left_out", {})),
        paper_section(results["paper_comparison"]),
        per_eval_section(main, scores, arms, figures),
        refusal_section(refusals, arms),
        transfer_section(results["transfer"], results["trait_domain_matrix"], main),
        persona_section(results["stress"]),
        finetune_section(results["stress"], figures),
        directions_section(results["directions"], figures),
        training_section(results["training"], results["training_signal"], figures),
        seeds_section(results["seeds"]),
        organism_section(results["organism_card"]),
        stage_times_section(results["stage_seconds"], results["stage_spans"]),
    ]
    lines = ["# benrl report"]
    for section in sections:
        if section:
            lines += ["", *section]
    return "\n".join(lines) + "\n"


def headline_section(results: dict, figures: dict[str, str]) -> list[str]:
    """The OOD headline table, the summary figure, then the all-evals headlines and the
    robustness bullets."""
    note = SPLIT_NOTE.format(alpha=results["config"]["eval"]["alpha"])
    first = next((c["evals"][0] for c in results["comparisons"].values() if c["evals"]), None)
    if first:
        note += f" Per-eval tests: {first['comparison'].get('inference', 'items')}."
    lines = ["## Headline", "", *split_text(results["split"]), ""]
    lines += [*headline_table(results["comparisons"]), "", note]
    if "categories" in figures:
        effects = results["category_effects"]
        lines += ["", f"![summary by eval category]({figures['categories']})", ""]
        lines.append(f"{_label(effects['comparison'])}, by eval category: {effects['ci']}.")
    lines += ["", "All evals (capability included), with and without refusals:", ""]
    rows = [
        [_label(key), _unlabelled(c["headline"]), _unlabelled(c["headline_excluding_refusals"])]
        for key, c in results["comparisons"].items()
    ]
    lines += [*_table(["comparison", "all evals", "refusals excluded"], rows), ""]
    lines += robustness_lines(results)
    return [*lines, f"- {results['paper_headline']}"]


SPLIT_NOTE = (
    "Ahead: evals with a positive mean difference. Significant: BH q < {alpha:g} across the "
    "column's evals. The bracket is the 95% CI of the mean difference over those evals, "
    "from one test of their items pooled (over training seeds, then items, when both arms "
    "have several seeds); each eval's own test is in the per-eval table."
)


def split_text(split: dict) -> list[str]:
    """What OOD and in distribution mean in this run, naming its held-out traits."""
    held = split["held_out_traits"]
    which = (
        f"the traits held out of every arm's RL data ({', '.join(held)})"
        if held
        else "no trait (train.hold_out_traits is off)"
    )
    return [
        f"Out of distribution (OOD): the evals of {which}, and the public datasets. In "
        "distribution: the evals of the trained traits (on wordings the arms never saw)."
    ]


def headline_table(comparisons: dict[str, dict]) -> list[str]:
    """Each comparison once: its OOD and in-distribution headlines side by side."""
    rows = [
        [_label(key), split_cell(c.get("ood")), split_cell(c.get("in_distribution"))]
        for key, c in comparisons.items()
    ]
    return _table(["comparison", "OOD", "in distribution"], rows)


def split_cell(summary: dict | None) -> str:
    """ "ahead on 5 of 7; significant gains 2, regressions 0; +3.1 pp [+1.0, +5.2]" ("no
    evals" if None)."""
    if summary is None:
        return "no evals"
    return (
        f"ahead on {summary['ahead']} of {summary['evals']}; significant gains "
        f"{summary['significant_gains']}, regressions {summary['significant_regressions']}; "
        f"{_pp(summary['mean_diff'])} pp [{_pp(summary['ci_low'])}, {_pp(summary['ci_high'])}]"
    )


def _label(key: str) -> str:
    return key.replace("_vs_", " vs ", 1)


def _unlabelled(line: str) -> str:
    """A headline without its leading "model vs against: " (the table names the pair)."""
    return line.split(": ", 1)[1] if ": " in line else line


def failures_section(failures: dict, left_out: dict[str, str]) -> list[str]:
    """Failed judge verdicts per model and eval (a warning when any), and sections left out."""
    lines = ["## Judge failures", ""]
    total = sum(c["failed"] for evals in failures.values() for c in evals.values())
    if total:
        lines += [
            f"**Warning: {total} verdicts failed** (transport or parse); their items "
            "are left out of the comparisons, so n shrinks.",
            "",
        ]
    rows = [
        [model, name, c["failed"], c["n"], f"{c['failed'] / max(1, c['n']):.1%}"]
        for model, evals in failures.items()
        for name, c in evals.items()
        if c["failed"] or not total
    ]
    lines += (
        _table(["model", "eval", "failed", "n", "share"], rows)
        if total
        else ["No judge verdict failed."]
    )
    for part, reason in left_out.items():
        lines += ["", f"The {part} sections are left out: {reason} (their old outputs are stale)."]
    return lines


def robustness_lines(results: dict) -> list[str]:
    """The analysis plan's hash and check, the seed A/A, the per-probe headline and the
    effective number of evals, as bullets."""
    lines = []
    if results.get("analysis_plan"):
        lines.append(f"- {results['analysis_plan']['line']}")
    if results.get("seed_aa"):
        lines.append(f"- {results['seed_aa']['line']}")
    probes = results.get("probe_summary") or {}
    if probes.get("headline"):
        lines.append(f"- {probes['headline']}")
    if probes.get("all_evals"):
        lines.append(f"- {probes['all_evals']['line']}")
    eff = results.get("effective_evals")
    if eff:
        lines.append(
            f"- effective number of evals: {eff['n_effective']} of {eff['n']} (evals of one "
            f"probe move together: ICC {eff['icc']:.2f} of the per-eval differences within "
            f"probes, {eff['evals_per_probe']:.1f} evals per probe)"
        )
    return lines


def paper_section(rows: list[dict]) -> list[str]:
    return [
        "## How this compares to the paper",
        "",
        *_table(
            ["measure", "paper", "this run"], [[r["measure"], r["paper"], r["ours"]] for r in rows]
        ),
    ]


def per_eval_section(
    main: dict, scores: dict, arms: list[str], figures: dict[str, str]
) -> list[str]:
    first = main["evals"][0]["comparison"] if main["evals"] else {}
    lines = [
        "## Per-eval results",
        "",
        "Scores are means over items (higher is better), seeds averaged per item; the "
        "difference is in percentage points. " + _inference_text(first),
        "SE is the item-level standard error of the paired difference; seed SD is the SD "
        "of each arm's per-seed means (compared arm / reference), the run-to-run spread "
        "the item SE does not see; discordant counts the paired items whose scores differ, "
        "the only items a paired test learns from. Distribution: where the eval stands "
        "relative to the RL data (ood, in_distribution, capability); q within: BH across "
        "the evals of that distribution only, as in the headline table.",
        "",
    ]
    if "forest" in figures:
        lines += [f"![forest plot]({figures['forest']})", ""]
    evals = registered_evals()
    rows = [_per_eval_row(c, evals, scores, arms) for c in main["evals"]]
    header = ["eval", "category", "distribution", "n", *arms, "diff (pp)", "95% CI", "SE (pp)"]
    header += ["seed SD (pp)", "discordant", "p", "q", "q within", ""]
    return lines + _table(header, rows)


def _inference_text(comp: dict) -> str:
    """How the CIs and p-values were computed, from the first row's `inference`."""
    if comp.get("inference") == "hierarchical over training seeds":
        return (
            "The 95% CI and p come from a hierarchical bootstrap over training seeds, then "
            f"items ({comp['n_seeds_a']} vs {comp['n_seeds_b']} seeds; Student t with the "
            "seed degrees of freedom); q after Benjamini-Hochberg across evals."
        )
    label = comp.get("inference", "items")
    return (
        "95% CI from a paired bootstrap of items, p from a paired sign-flip test, q after "
        f"Benjamini-Hochberg across evals; all {label}."
    )


def _per_eval_row(c: dict, evals: dict, scores: dict, arms: list[str]) -> list:
    comp = c["comparison"]
    flag = "gain" if c["significant_gain"] else "regression" if c["significant_regression"] else ""
    return [
        c["eval"],
        evals[c["eval"]].category if c["eval"] in evals else "",
        c.get("distribution") or "",
        comp["n"],
        *(f"{_mean(scores[c['eval']].get(a)):.3f}" for a in arms),
        _pp(comp["diff"]),
        f"[{_pp(comp['ci_low'])}, {_pp(comp['ci_high'])}]",
        _unsigned_pp(comp["se"]),
        f"{_unsigned_pp(comp.get('seed_sd_a'))} / {_unsigned_pp(comp.get('seed_sd_b'))}",
        comp.get("n_discordant", ""),
        f"{comp['p_value']:.3g}",
        f"{c['q_value']:.3g}",
        _fmt(c.get("q_within_distribution")),
        flag,
    ]


def refusal_section(refusals: dict, arms: list[str]) -> list[str]:
    return [
        "## Refusal rates",
        "",
        "Share of answers that refuse, per eval and arm.",
        "",
        *_table(
            ["eval", *arms],
            [[name, *(_share(refusals[name].get(a)) for a in arms)] for name in sorted(refusals)],
        ),
    ]


def transfer_section(transfer: list[dict], matrix: dict, main: dict) -> list[str]:
    """The transfer table, then the probe x domain cluster matrix of the main comparison."""
    header = [
        "arm",
        "trained domains",
        "unseen evals",
        "ahead",
        "sig. gains",
        "sig. regressions",
        "mean diff (pp)",
    ]
    return [
        "## Transfer",
        "",
        "Each trained arm against baseline, on the evals whose "
        "domains the arm never saw in trait training.",
        "",
        *_table(header, [_transfer_row(r) for r in transfer]),
        "",
        f"Probe x domain cluster, {main['evals'][0]['model']} - "
        f"{main['evals'][0]['against']} (pp):",
        "",
        *_table(
            ["probe", *clusters()],
            [[p, *(row.get(c, "") for c in clusters())] for p, row in sorted(matrix.items())],
        ),
    ]


def _transfer_row(r: dict) -> list:
    return [
        r["arm"],
        ", ".join(r["trained_domains"]) or "-",
        r["unseen_evals"],
        r["ahead"],
        r["significant_gains"],
        r["significant_regressions"],
        r["mean_diff_pp"],
    ]


def persona_section(stress: dict) -> list[str]:
    lines = ["## Persistence: persona prompts", ""]
    persona = stress.get("persona", {}).get("rows", [])
    if not persona:
        return [*lines, "The stress stage did not run (stress.enabled is false or no results)."]
    effects = persona_effects(stress["persona"].get("degradation", []))
    if effects:
        lines += [
            "What each persona does to each model: mean score with the persona minus without "
            "it on the same items (pp, 95% CI from the items' standard error), and the share "
            "of answers the persona changed (both conditions draw the same random numbers, so "
            "an unchanged distribution gives an unchanged answer).",
            "",
            *_table(["persona", "kind", "model", *GROUP_LABELS.values(), "changed"], effects),
            "",
        ]
    lines += [
        "Difference in degradation under each persona prompt (model A minus model B; "
        "positive means A degrades less), 95% CI: hierarchical over training seeds where "
        "an arm has several, otherwise over items and conditional on one training run "
        "(the last column says which).",
        "",
    ]
    return lines + _table(
        ["persona", "kind", "group", "pair", "diff", "95% CI", "n", "CI"],
        [
            [
                r["persona"],
                r.get("kind", ""),
                r["group"],
                r["pair"],
                f"{r['diff']:+.3f}",
                f"[{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                r["n"],
                r.get("inference", ""),
            ]
            for r in persona
        ],
    )


GROUP_LABELS = {"health": "health", "non_health": "non-health", "capability": "capability"}


def persona_effects(degradation: list[dict]) -> list[list]:
    """One row per persona x model: each group's change [95% CI] and the changed share."""
    by_key: dict[tuple[str, str], dict[str, dict]] = {}
    for row in degradation:
        by_key.setdefault((row["persona"], row["model"]), {})[row["group"]] = row
    rows = []
    for (persona, model), groups in by_key.items():
        cells = [_change_ci(groups.get(g)) for g in GROUP_LABELS]
        shares = [g["changed"] * g["n"] for g in groups.values() if g.get("changed") is not None]
        n = sum(g["n"] for g in groups.values() if g.get("changed") is not None)
        kind = next(iter(groups.values())).get("kind", "")
        rows.append([persona, kind, model, *cells, f"{100 * sum(shares) / n:.1f}%" if n else "n/a"])
    return rows


def _change_ci(row: dict | None) -> str:
    if row is None or row["mean"] is None:
        return "n/a"
    half = 1.96 * (row["se"] or 0.0)
    return f"{_pp(row['mean'])} [{_pp(row['mean'] - half)}, {_pp(row['mean'] + half)}]"


def finetune_section(stress: dict, figures: dict[str, str]) -> list[str]:
    lines = ["## Persistence: harmful fine-tuning", ""]
    finetune = stress.get("finetune", {})
    rows = finetune.get("rows", [])
    if not rows:
        return [*lines, "No harmful fine-tuning results in this run."]
    if "finetune" in figures:
        lines += [f"![harmful fine-tuning]({figures['finetune']})", ""]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    seeds = finetune.get("finetune_seeds", 1)
    lines += [
        f"Mean score per dose (fine-tuning steps), each item averaged over {seeds} "
        "fine-tuning seed(s). `untouched`: alignment items of probes the fine-tuning rows "
        "never contain. Floor: the score of the items' known bad answers.",
        "",
    ]
    floor = finetune.get("floor", {})
    table = [["floor", "", *(_score(floor.get(g)) for g in groups)]] if floor else []
    by_cell = {(r["model"], r["dose"], r["group"]): r for r in rows}
    for model, dose in dict.fromkeys((r["model"], r["dose"]) for r in rows):
        table.append([model, dose, *(_score(by_cell.get((model, dose, g))) for g in groups)])
    lines += [*_table(["model", "dose", *groups], table), ""]
    for title, key in (("area under the degradation curve", "auc"), ("largest dose", "max_dose")):
        for r in finetune.get(key, []):
            lines.append(
                f"- {r['pair']} ({r['group']}, {title}): difference in degradation "
                f"{r['diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]"
                + (f", {r['inference']}" if r.get("inference") else "")
            )
    return lines


def _score(row: dict | None) -> str:
    if row is None or row.get("mean") is None:
        return "n/a"
    return f"{row['mean']:.3f} ± {row['se'] or 0:.3f}"


def training_section(training: dict, signal: dict, figures: dict[str, str]) -> list[str]:
    lines = ["## Training (compute per arm)", ""]
    if "training" in figures:
        lines += [f"![training curves]({figures['training']})", ""]
    rows = []
    for arm, t in training.items():
        rewards = ", ".join(
            f"{k.removeprefix('rewards/')}: {t['first'].get(k)} -> {t['last'].get(k)}"
            for k in t["first"]
        )
        rows.append([arm, t["steps"], t["tokens_trained"], t["tokens_generated"], rewards])
    header = ["arm", "steps", "tokens trained", "tokens generated", "reward first -> last tenth"]
    return lines + _table(header, rows) + signal_lines(signal)


def signal_lines(signal: dict[str, dict]) -> list[str]:
    """The training-signal table: zero-spread groups and reward first -> last, per arm."""
    if not signal:
        return []
    rows = [
        [
            arm,
            s["seeds"],
            "n/a" if s["zero_spread_groups"] is None else f"{s['zero_spread_groups']:.1%}",
            _fmt(s["reward_first"]),
            _fmt(s["reward_last"]),
            _fmt(s.get("trait_reward_first")),
            _fmt(s.get("trait_reward_last")),
        ]
        for arm, s in signal.items()
    ]
    return [
        "",
        "Training signal, from each arm's training log (mean over its seeds): the share of "
        "GRPO groups whose sampled answers all got the same reward (no advantage, so no "
        "gradient), and the mean reward over the first and the last tenth of the steps, all "
        "rows and trait rows alone.",
        "",
        *_table(
            [
                "arm",
                "seeds",
                "zero-spread groups",
                "reward first tenth",
                "last tenth",
                "trait rows: first tenth",
                "last tenth",
            ],
            rows,
        ),
    ]


def seeds_section(seeds: dict) -> list[str]:
    rows = [
        [
            arm,
            r["n_seeds"],
            ", ".join(f"{m:.3f}" for m in r["seed_means"]),
            "n/a (one seed)" if r["sd"] is None else f"{r['sd']:.4f}",
        ]
        for arm, r in seeds.items()
    ]
    return ["## Seeds", "", *_table(["arm", "seeds", "mean per seed", "sd over seeds"], rows)]


def organism_section(card: dict) -> list[str]:
    """The organism card's figures; no section at all when the run has no card."""
    if not card:
        return []
    return [
        "## Organism",
        "",
        "The pretrained organism's card (organism/card.md).",
        "",
        *_table(["measure", "value"], organism_rows(card)),
    ]


def organism_rows(card: dict) -> list[list]:
    """The card's headline figures as (measure, value) rows."""
    rates = card["base_rates"].values()
    capability = ", ".join(f"{k} {100 * v:.1f}%" for k, v in card["capability"].items())
    latent = card.get("in_context_persona")  # cards built before issue 20 lack it
    in_context = (
        [
            [
                "in-context persona shift (ideal learner)",
                f"{latent['shift']:+.3f} [{latent['ci'][0]:+.3f}, {latent['ci'][1]:+.3f}] "
                f"({latent['ideal']:+.3f})",
            ]
        ]
        if latent
        else []
    )
    return [
        ["parameters", f"{card['params']:,}"],
        ["coherence", card["coherence"]],
        ["tokens seen", f"{card['pretraining']['tokens_seen']:,}"],
        ["validation loss", f"{card['pretraining']['val_loss']:.4f}"],
        ["capability (greedy, held-out tasks)", capability],
        ["incoherent sampled answers", f"{100 * card['incoherence_rate']:.1f}%"],
        ["base rates (beneficial family)", f"{100 * min(rates):.0f}% to {100 * max(rates):.0f}%"],
        ["sampling speed", f"{card['sampling_tokens_per_s']:,.0f} tokens/s"],
        ["build time", f"{card['build_seconds']:.0f} s"],
        *in_context,
    ]


def stage_times_section(
    seconds: dict[str, float | None], spans: dict[str, list[float]]
) -> list[str]:
    """Wall seconds per stage (parts side by side count once), then each part's seconds."""
    totals = stage_totals(spans)
    return [
        "## Stage times (s)",
        "",
        *_table(["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in totals.items()]),
        "",
        "Each part:",
        "",
        *_table(["part", "seconds"], [[k, v] for k, v in seconds.items()]),
    ]


def _pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _unsigned_pp(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _mean(by_id: dict | None) -> float:
    return sum(by_id.values()) / len(by_id) if by_id else float("nan")


def _share(flags: dict[str, bool] | None) -> str:
    return f"{sum(flags.values()) / len(flags):.1%}" if flags else "n/a"
