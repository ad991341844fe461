"""Independent stage units side by side, in worker processes with a share of the cores each.

The train, eval and stress stages are many independent units (an arm x seed, one model
on the eval suite, one persona on one model, one fine-tuning ladder), each a resumable
stage folder with its own manifest. One process runs them one after another, and a
small model leaves cores idle: a decode step of the organism is mostly per-op overhead,
which two threads share badly. With `workers: N` (the config's top-level key), N units
run at a time, each in a process of `cores / N` torch threads. On 2 cores, two 1-thread
processes answer 1.3x as fast as one 2-thread process, and train 1.35x the GRPO arms
(docs/performance.md).

A unit writes its outputs and its manifest itself (`Stage.running`), so a unit that
finished is kept whatever happens to the others, and a killed run resumes at the units
without a complete manifest. The first failure stops the units not yet started; those
already running finish, then the error is raised. Workers are spawned, never forked
(torch's thread pools do not survive a fork), and import the installed plug-ins as the
registries ask for them, as the main process does.

A sampled answer depends on float round-off, which depends on the thread count: a run
with `workers: 2` reproduces itself, and can differ from `workers: 1` where a round-off
flips a draw. With `workers: 1` (the default) units run here, in order; so do the last
units when fewer are left than workers (they get every core).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

from benrl.devices import cpu_threads
from benrl.run import console
from benrl.runfolder import Stage

PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Unit:
    """One stage folder's work: `work(figures, *args)`, figures a dict for its manifest.

    `work` puts its figures in as it goes, so a failed manifest keeps those it reached.
    It must be a module-level function and `args` plain data (paths, configs, records):
    a worker process receives them pickled.
    """

    stage: Stage
    message: str  # printed when the unit starts
    work: Callable[..., None]
    args: tuple = field(default_factory=tuple)


def run_unit(unit: Unit) -> None:
    """Run one unit under its stage's manifest (running, then complete or failed)."""
    console.print(unit.message)
    with unit.stage.running() as figures:
        unit.work(figures, *unit.args)


def run_units(units: Sequence[Unit], workers: int) -> None:
    """Every unit: here in order with one worker, else `workers` at a time in processes.

    The last units, fewer than the processes (9 arms on 2 workers: the ninth), would
    run alone on a share of the cores: they run here after the pool, with all of them.
    A machine with one core (or OMP_NUM_THREADS=1) runs every unit here.
    """
    # never more processes than cores (OMP_NUM_THREADS, when set, counts as the cores)
    processes = min(workers, len(units), cpu_threads())
    if processes <= 1:
        for unit in units:
            run_unit(unit)
        return
    pooled = len(units) - len(units) % processes
    _run_pool(units[:pooled], processes, cpu_threads() // processes)
    run_units(units[pooled:], 1)


def _run_pool(units: Sequence[Unit], processes: int, threads: int) -> None:
    """The units in `processes` spawned workers of `threads` torch threads each."""
    pool = _pool(processes, threads)
    futures = [pool.submit(run_unit, unit) for unit in units]
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for future in pending:
        future.cancel()  # not started: dropped; running: finishes and keeps its outputs
    wait(pending)
    for future in futures:  # the first failure in submission order, as one process would
        if future.done() and not future.cancelled() and future.exception() is not None:
            shutdown_workers()  # a worker may have died with it: the next call starts afresh
            raise future.exception()


# One pool per process, kept from stage to stage: a worker's start (torch, transformers,
# TRL imports) costs about 6 s, paid once per run instead of once per stage.
_pools: dict[tuple[int, int], ProcessPoolExecutor] = {}


def _pool(processes: int, threads: int) -> ProcessPoolExecutor:
    if (processes, threads) not in _pools:
        shutdown_workers()
        _pools[processes, threads] = ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker,
            initargs=(threads,),
        )
    return _pools[processes, threads]


def shutdown_workers() -> None:
    """Stop the worker processes (the pipeline calls this when a run ends)."""
    for pool in _pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _pools.clear()


def _start_worker(threads: int) -> None:
    """A worker's setup: its share of the cores, no live progress bars (they would draw
    over each other; the unit's start message still prints), and death with its parent."""
    import torch

    _die_with_parent()
    torch.set_num_threads(threads)
    os.environ["BENRL_PROGRESS"] = "0"


def _die_with_parent() -> None:
    """Ask Linux to kill this worker when the run's process dies (killed, crashed).

    A killed run releases its run-folder lock; a worker left running would then write
    into the folder of the resumed run (and, its unit done, wait for work forever).
    Other systems have no such request: there, stop the workers of a killed run by hand.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() == 1:  # the parent died before the request: nobody is left to wait
        os._exit(1)
