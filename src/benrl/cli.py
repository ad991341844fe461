"""The `benrl` command line.

`benrl run` is the main job (every stage, resumable). The other commands run or
inspect one piece; stage commands take the same config and run folder as `run`, so
`benrl scenarios build` is `benrl run --only scenarios`. User errors (`BenrlError`)
print one line naming what and where and exit with code 2; nothing already finished
in the run folder is deleted. Ctrl-C says so and exits 130; the same command resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from benrl.errors import BenrlError

if TYPE_CHECKING:
    from benrl.config import RunConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch from a hub at run time
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # rich bars are ours

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Beneficial-trait RL: scenarios, RL arms, evals, stress tests, report.",
)
scenarios_app = typer.Typer(no_args_is_help=True, help="Trait scenarios and standard tasks.")
organism_app = typer.Typer(no_args_is_help=True, help="The embedded persona-world organism.")
eval_app = typer.Typer(no_args_is_help=True, help="The eval suite and its checks.")
app.add_typer(scenarios_app, name="scenarios")
app.add_typer(organism_app, name="organism")
config_app = typer.Typer(no_args_is_help=True, help="The run configuration.")
app.add_typer(eval_app, name="eval")
data_app = typer.Typer(no_args_is_help=True, help="Public eval datasets (evaluation only).")
app.add_typer(data_app, name="data")
app.add_typer(config_app, name="config")
report_app = typer.Typer(no_args_is_help=True, help="A finished run's report.")
app.add_typer(report_app, name="report")
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from benrl import __version__

        print(f"benrl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Beneficial-trait RL: scenarios, RL arms, evals, stress tests, report."""


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="YAML run config")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="run folder (default runs/<name>)")]
DEFAULT_CONFIG = Path("configs/default.yaml")


def user_errors(fn: Callable) -> Callable:
    """Print a BenrlError as one line and exit 2, without a traceback; on Ctrl-C say what
    is kept and exit 130 (128 + SIGINT, as a shell reports it)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BenrlError as e:
            console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except OSError as e:  # read-only folder, a file where a folder should be, disk full
            where = f" {e.filename}" if e.filename else ""
            console.print(
                f"[red]error:[/red]{where}: {e.strerror or e}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None
        except KeyboardInterrupt:  # the running stage (or units) are marked failed
            console.print(
                "[yellow]interrupted:[/yellow] finished stages are kept; "
                "run the same command again to resume"
            )
            raise typer.Exit(130) from None

    return wrapper


def load_config(path: Path, overrides: list[str] | None = None) -> RunConfig:
    """The validated config (with `key=value` overrides), checked against the registries,
    its files and the environment."""
    from benrl.checks import check_config
    from benrl.config import load_config as read_config

    cfg = read_config(path, overrides or ())
    check_config(cfg, str(path))
    return cfg


def _run(
    config: Path,
    out: Path | None,
    only: set[str],
    force: set[str] = frozenset(),
    overrides: list[str] | None = None,
) -> Path:
    from benrl.devices import check_cuda_options
    from benrl.pipeline import run_pipeline

    cfg = load_config(config, overrides)
    check_cuda_options(cfg, str(config))  # before any stage: a CPU box cannot run these
    return run_pipeline(cfg, out or Path("runs") / cfg.name, set(force), only)


@app.command()
@user_errors
def run(
    config: ConfigOpt = DEFAULT_CONFIG,
    out: OutOpt = None,
    force: Annotated[
        list[str] | None,
        typer.Option(
            help="redo this stage (repeatable); `plan` accepts a changed analysis plan "
            "after training began (the report then says so)"
        ),
    ] = None,
    only: Annotated[list[str] | None, typer.Option(help="run only this stage (repeatable)")] = None,
    check: Annotated[
        bool, typer.Option("--check", help="check the config and endpoints, run nothing")
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="config overrides KEY=VALUE with dotted keys, e.g. train.steps=10 "
            "eval.items_per_eval=5 (values read as YAML, validated like the file)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run every stage: scenarios, organism, train, eval, stress, directions, report.

    A killed run resumes where it stopped; finished stages are reused.
    """
    if check:
        from benrl.checks import check_endpoints

        cfg = load_config(config, overrides)
        check_endpoints(cfg)
        print(f"{config}: ok (names, options, files, API-key variables and endpoints checked)")
        return
    report = _run(config, out, set(only or ()), set(force or ()), overrides)
    results = report.parent / "results.json"
    if results.exists():  # each comparison once: its OOD headline where the run has OOD evals
        for comparison in json.loads(results.read_text())["comparisons"].values():
            ood = comparison.get("ood")
            line = f"OOD: {ood['headline']}" if ood else comparison["headline"]
            console.print(line, soft_wrap=True)
    print(report)


@app.command()
@user_errors
def rehearse(
    config: ConfigOpt = DEFAULT_CONFIG,
    out: OutOpt = None,
    realdata: Annotated[
        Path | None, typer.Option(help="public-datasets folder to use instead of the config's")
    ] = None,
) -> None:
    """Run the config's stage plan on CPU, offline, in minutes: tiny model, stand-in judge.

    Catches config and plumbing errors before a GPU job. Its numbers mean nothing.
    """
    from benrl.rehearsal.plan import NOTICE, load_for_rehearsal
    from benrl.rehearsal.plan import rehearse as run_rehearsal

    cfg = load_for_rehearsal(config, realdata)  # checked at rehearsal size, files substituted
    folder = run_rehearsal(cfg, out)
    console.print(f"[bold yellow]{NOTICE}[/bold yellow]", soft_wrap=True)
    print(folder)


@scenarios_app.command("build")
@user_errors
def scenarios_build(config: ConfigOpt = DEFAULT_CONFIG, out: OutOpt = None) -> None:
    """Build the scenarios stage: train/eval records and the card."""
    report = _run(config, out, {"scenarios"})
    print(report.parent.parent / "scenarios" / "card.md")


@organism_app.command("build")
@user_errors
def organism_build(
    config: ConfigOpt = DEFAULT_CONFIG,
    out: Annotated[Path | None, typer.Option(help="output folder")] = None,
    coherence: Annotated[float | None, typer.Option(help="override organism.coherence")] = None,
    seed: Annotated[int | None, typer.Option(help="override the seed")] = None,
) -> None:
    """Build (or resume building) the organism and print its card."""
    from benrl.organism.stage import build_stage
    from benrl.run import Run
    from benrl.runfolder import run_lock

    cfg = load_config(config)
    organism = cfg.organism.model_copy(update={} if coherence is None else {"coherence": coherence})
    organism = type(organism).model_validate(organism.model_dump())  # re-check the range
    cfg = cfg.model_copy(update={"organism": organism, "seed": cfg.seed if seed is None else seed})
    folder = out or Path("runs") / cfg.name / "organism"
    with run_lock(folder.parent):
        folder = build_stage(Run(cfg, folder.parent), folder.name)
    print((folder / "card.md").read_text())


@organism_app.command("controls")
@user_errors
def organism_controls(
    config: ConfigOpt = DEFAULT_CONFIG,
    out: Annotated[Path | None, typer.Option(help="output folder")] = None,
    dose: Annotated[
        list[float] | None,
        typer.Option(help="extra train.trait_fraction at coherence 1 (repeat the option)"),
    ] = None,
    dose_seeds: Annotated[
        int | None,
        typer.Option(min=1, help="training seeds per arm in the dose rows (default: the config's)"),
    ] = None,
) -> None:
    """Coherence 0 vs 1: the whole protocol on each organism, OOD transfer side by side."""
    from benrl.organism.controls import run_controls
    from benrl.runfolder import run_lock

    cfg = load_config(config)
    for fraction in dose or []:
        if not 0 <= fraction <= 1:
            raise BenrlError(f"--dose {fraction}: a trait fraction is between 0 and 1")
    folder = out or Path("runs") / cfg.name / "controls"
    with run_lock(folder):  # each row's run folder takes its own lock as well
        run_controls(cfg, folder, doses=tuple(dose or ()), dose_seeds=dose_seeds)
    print((folder / "controls.md").read_text())


@config_app.command("keys")
def config_keys() -> None:
    """List every config key with its default and help text."""
    from benrl.config import config_keys as keys

    table = Table("key", "default", "help")
    for key, default, text in keys():
        table.add_row(key, default, text)
    Console().print(table)


@app.command()
@user_errors
def traits() -> None:
    """List the trait taxonomy: traits, domains and pressure types."""
    from benrl.data.traits import taxonomy_table

    table = Table("kind", "name", "group", "title", "notes")
    for row in taxonomy_table():
        table.add_row(row["kind"], row["name"], row["group"], row["title"], row["notes"])
    Console().print(table)


@eval_app.command("run")
@user_errors
def eval_run(config: ConfigOpt = DEFAULT_CONFIG, out: OutOpt = None) -> None:
    """Run the eval and report stages (earlier stages must be done) and print the report."""
    report = _run(config, out, {"eval", "report"})
    print((report.parent / "report.md").read_text())


@eval_app.command("aa")
@user_errors
def eval_aa(
    config: ConfigOpt = DEFAULT_CONFIG,
    out: OutOpt = None,
    model: Annotated[str, typer.Option(help="model id in the run folder")] = "pre",
    samples: Annotated[int, typer.Option(help="sampled answers per item")] = 10,
    items: Annotated[int, typer.Option(help="items per eval")] = 30,
    repetitions: Annotated[int, typer.Option(help="A/A repetitions")] = 200,
) -> None:
    """A/A check: the same model against itself must flag no eval in >= 95% of repetitions."""
    from benrl.evaluation.aa import run_aa, sample_scores
    from benrl.evaluation.runner import RunnerOptions, select_items
    from benrl.evaluation.suites import eval_pool, eval_suite
    from benrl.records import read_records
    from benrl.run import Run
    from benrl.runfolder import run_lock

    cfg = load_config(config)
    run = Run(cfg, out or Path("runs") / cfg.name)
    if samples < 2:
        raise BenrlError(f"--samples {samples}: the A/A check needs at least 2 per item")
    names = eval_suite(cfg)
    chosen = select_items(eval_pool(cfg, read_records(run.eval_records)), names, items, cfg.seed)
    judges = RunnerOptions.from_config(cfg).judges()
    scores = sample_scores(
        run.model_dir(model),
        chosen,
        judges,
        samples,
        cfg.eval.max_new_tokens,
        cfg.eval.batch_size,
        cfg.seed,
    )
    with run_lock(run.dir):
        result = run_aa(scores, repetitions, cfg.eval.alpha, cfg.seed, run.dir / "aa.json")
    print(
        f"A/A ({model}, {result['n_evals']} evals x {items} items, {samples} samples): "
        f"{result['flagged']} of {repetitions} repetitions flagged an eval at FDR "
        f"{cfg.eval.alpha}; clean in {result['share_clean']:.1%}"
    )


@eval_app.command("list")
def eval_list() -> None:
    """List the registered evals with their categories."""
    from benrl.evaluation.registry import registered_evals

    table = Table("eval", "family", "category", "description")
    for name, ev in sorted(registered_evals().items(), key=lambda kv: (kv[1].family, kv[0])):
        first = ev.description.splitlines()[0] if ev.description else ""
        table.add_row(name, ev.family, ev.category, first)
    Console().print(table)


@data_app.command("fetch")
@user_errors
def data_fetch(
    sets: Annotated[list[str] | None, typer.Argument(help="sets to fetch (default: all)")] = None,
    to: Annotated[Path, typer.Option("--to", help="the datasets folder to write")] = Path(
        "data/realdata"
    ),
    mirror: Annotated[
        str | None, typer.Option(help="fetch the same paths from this base URL instead")
    ] = None,
) -> None:
    """Download public eval datasets at pinned revisions, checksum-checked, with provenance."""
    from benrl.data.fetch import fetch

    provenance = fetch(list(sets or []), to, mirror)
    print(f"{len(provenance)} files in {to} (provenance: {to / 'provenance.json'})")


@report_app.command("readme")
@user_errors
def report_readme(
    run: Annotated[Path, typer.Option("--run", help="run folder, e.g. runs/default")],
    readme: Annotated[Path, typer.Option("--readme", help="README to update")] = Path("README.md"),
) -> None:
    """Rewrite the README's Results section from a run's report/results.json.

    Replaces everything between the README's results:start and results:end markers.
    """
    from benrl.report.readme import update_readme

    changed = update_readme(run, readme)
    print(f"{readme}: {'Results section rewritten' if changed else 'unchanged'} from {run}")


@app.command("serve-reward")
@user_errors
def serve_reward(
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 5000,
    records: Annotated[Path | None, typer.Option(help="scenario JSONL labels may name")] = None,
    judge: Annotated[list[str] | None, typer.Option(help="kind=judge, e.g. trait=generic")] = None,
    config: Annotated[
        Path | None, typer.Option(help="run config whose `judge` section picks judges and options")
    ] = None,
) -> None:
    """Serve the judges over HTTP with OpenRLHF's remote-reward protocol."""
    from benrl.records import read_records
    from benrl.training.serve import run_server

    options = {}
    judge_by_kind = {}
    if config:
        cfg = load_config(config)
        judge_by_kind = {"trait": cfg.judge.trait, "task": cfg.judge.task}
        options = cfg.judge.options

    for item in judge or ():
        kind, sep, name = item.partition("=")
        if not sep:
            raise BenrlError(f"--judge {item!r}: expected kind=judge, e.g. trait=world")
        judge_by_kind[kind] = name
    by_id = {r.id: r for r in read_records(records)} if records else None
    run_server(host, port, judge_by_kind or None, by_id, judge_options=options)


@app.command()
@user_errors
def export(
    target: Annotated[str, typer.Argument(help="verl or openrlhf")],
    config: ConfigOpt = DEFAULT_CONFIG,
    run_dir: Annotated[Path | None, typer.Option(help="run folder with scenarios")] = None,
    arm: Annotated[str, typer.Option(help="arm to export")] = "beneficial",
    seed: Annotated[int, typer.Option(help="mixture seed")] = 0,
    out: Annotated[Path | None, typer.Option(help="export folder")] = None,
) -> None:
    """Export an arm's data, reward module and launch command for verl or OpenRLHF."""
    from benrl.runfolder import run_lock
    from benrl.training.export import export_cli

    cfg = load_config(config)
    run_dir = run_dir or Path("runs") / cfg.name
    with run_lock(run_dir):
        result = export_cli(
            target, run_dir, cfg, arm, seed, out or run_dir / "export" / target / arm
        )
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False, soft_wrap=True)
    print(result.out_dir)


if __name__ == "__main__":
    app()
