"""The report's directions section: the layers, the verdict (direction found or not, against
chance, layer 0 and the untrained twin), and projection vs behaviour with its CIs."""

from __future__ import annotations

from benrl.report.tables import fmt, table


def directions_section(directions: dict, figures: dict[str, str]) -> list[str]:
    lines = ["## Inside the model: trait directions", ""]
    if not directions:
        return [*lines, "The directions stage did not run."]
    if "skipped" in directions:
        return [*lines, f"The directions stage was skipped: {directions['skipped']}."]
    if "directions" in figures:
        lines += [f"![trait directions]({figures['directions']})", ""]
    quality = directions["quality"]
    twin = quality.get("untrained_by_layer") or [None] * len(quality["layers"])
    layers = zip(quality["layers"], quality["separation_by_layer"], twin, strict=True)
    lines += [
        "Each probe's direction is the mean difference of the model's state at the last "
        "prompt token between its train items under a careful and a careless persona "
        "prompt. The read-out token is the same under both, so layer 0 (its embedding) is "
        "the lexical baseline. Held-out separation: on eval-template items conditioned "
        "another way (an earlier exchange answered well or badly: no word in common with "
        "the persona prompts), how often the good side projects above the bad one (0.5 is "
        "chance; ties count half). The untrained twin (same architecture, random weights, "
        "same procedure) shows what the words alone separate.",
        "",
        *table(
            ["layer", "mean separation", "untrained twin"],
            [[k, f"{v:.3f}", fmt(c)] for k, v, c in layers],
        ),
        "",
        found_line(quality),
        "",
        f"Mean off-diagonal cosine between the probes' directions at layer "
        f"{quality['best_layer']}: {quality['mean_offdiag_cosine']:+.3f}; share of variance of "
        f"the first principal component {quality['top_component_share']:.3f} (shared "
        "structure across traits shows as high cosine and a large first component).",
        "",
        "Does the projection predict behaviour? Correlation between a model's mean "
        "projection on a probe's direction (unconditioned eval prompts) and its score on "
        "that probe: pooled over (model, probe) pairs; pooled centred removes each probe's "
        "mean over models, so it asks whether the models that project higher on a probe "
        "also score higher on it. Its CI over models resamples whole models (arms, seeds, "
        "fine-tuned doses); the Fisher-z CI and the p-values treat the pairs as independent, "
        "which one model's pairs are not. Per model: across its probes.",
        "",
    ]
    rows = _correlation_rows(directions.get("correlation", {}))
    return lines + table(
        ["scope", "n", "pearson r", "95% CI (Fisher z)", "95% CI over models", "p", "spearman"],
        rows,
    )


def found_line(quality: dict) -> str:
    """The verdict: a direction beyond the lexical baseline, or none found."""
    if "found" not in quality:  # a summary written before the verdict existed
        return "No verdict: these directions predate it; rerun the directions stage."
    best, baseline = quality["best_layer"], quality["lexical_baseline"]
    at_best = quality["separation_by_layer"][quality["layers"].index(best)]
    low, high = quality["best_ci"]
    twin = (quality.get("untrained_by_layer") or [None] * (best + 1))[best]
    bars = f"the lexical baseline ({baseline:.3f}) and the untrained twin ({fmt(twin)})"
    if quality["found"]:
        return (
            f"**Direction found** at layer {best}: held-out separation {at_best:.3f} "
            f"[{low:.3f}, {high:.3f}], above chance, {bars}."
        )
    return (
        f"**No direction found**: the best layer ({best}) separates {at_best:.3f} "
        f"[{low:.3f}, {high:.3f}] of the held-out pairs, not above chance, {bars}. "
        "Its tracking rows below are reported, not read."
    )


def _correlation_rows(corr: dict) -> list[list]:
    scopes = [("pooled", corr.get("pooled")), ("pooled centred", corr.get("pooled_centred"))]
    scopes += sorted(corr.get("per_model", {}).items())
    return [
        [
            name,
            c["n"],
            fmt(c["pearson"]),
            _interval(c.get("pearson_ci")),
            _interval(c.get("models_ci")),
            fmt(c["pearson_p"]),
            fmt(c["spearman"]),
        ]
        for name, c in scopes
        if c
    ]


def _interval(ci: list[float] | None) -> str:
    return "n/a" if not ci else f"[{ci[0]:+.3f}, {ci[1]:+.3f}]"
