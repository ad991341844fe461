"""The run folder contract: one folder per stage, each with a `manifest.json`.

A stage is skipped on re-run when its manifest says `complete` and its config hash and
input hashes match; so a killed run resumes where it stopped and loses nothing
finished. `--force STAGE` redoes one stage (and, through changed input hashes, the
stages that read it).

Integrity: a complete manifest lists the stage's output files with their sizes and
SHA-256 hashes; reuse checks them, so an output deleted, shortened or edited after the
stage finished makes the stage run again (with a one-line warning) instead of feeding
a silently different result to the stages after it. One writer at a time: every
command that writes to a run folder holds `run_lock` (an exclusive `fcntl.flock` on
`<run>/.lock`, which records the holder's pid); a second writer is refused at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from benrl.errors import BenrlError

TRACKED_PACKAGES = ("benrl", "torch", "transformers", "trl", "tokenizers", "datasets")


def hash_json(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def hash_path(path: Path) -> str:
    """Content hash of a file or of every file below a folder (names and bytes)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file.name == "manifest.json":
            continue  # timings differ between identical runs
        digest.update(str(file.relative_to(path.parent)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def output_files(folder: Path) -> dict[str, dict]:
    """Every file a stage wrote below its folder: relative path -> {size, sha256}.

    The manifest itself is left out, and so is any subfolder that is another stage
    (it has its own manifest and its own check).
    """
    outputs: dict[str, dict] = {}
    if not folder.is_dir():
        return outputs
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or rel.parts[0] in ("manifest.json", "manifest.tmp"):
            continue
        if any(
            (folder / Path(*rel.parts[:i]) / "manifest.json").exists()
            for i in range(1, len(rel.parts))
        ):
            continue
        outputs[rel.as_posix()] = {"size": path.stat().st_size, "sha256": file_hash(path)}
    return outputs


def changed_outputs(folder: Path, recorded: dict[str, dict]) -> str | None:
    """How the files below `folder` differ from a manifest's record, or None if they match."""
    for rel, want in sorted(recorded.items()):
        path = folder / rel
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != want["size"]:
            return f"{path} changed size ({want['size']} -> {size} bytes)"
        if file_hash(path) != want["sha256"]:
            return f"{path} changed content (hash {want['sha256']} -> {file_hash(path)})"
    return None


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


@dataclass
class Stage:
    """One stage's folder and the identity that decides whether it can be skipped."""

    run_dir: Path
    name: str
    config_hash: str
    inputs: dict[str, Path] = field(default_factory=dict)
    seed: int = 0
    # a cache of input_hashes(), not part of what the stage is (equality, repr)
    _input_hashes: dict[str, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def dir(self) -> Path:
        return self.run_dir / self.name

    @property
    def manifest_path(self) -> Path:
        return self.dir / "manifest.json"

    def input_hashes(self) -> dict[str, str]:
        """The inputs' content hashes, computed once: a stage's inputs are earlier stages'
        outputs, fixed while it runs, and the 30 MB eval scenarios take 0.03-0.09 s to
        hash (the skip check and the two manifests of every unit hashed them four times)."""
        if self._input_hashes is None:
            self._input_hashes = self._hash_inputs()
        return self._input_hashes

    def _hash_inputs(self) -> dict[str, str]:
        missing = [name for name, path in self.inputs.items() if not path.exists()]
        if missing:
            paths = ", ".join(str(self.inputs[name]) for name in missing)
            raise BenrlError(
                f"stage '{self.name}' needs {', '.join(missing)} ({paths}): run the earlier "
                "stages first (benrl run; a stage whose output was deleted reruns by itself, "
                "or with --force STAGE)"
            )
        return {name: hash_path(path) for name, path in sorted(self.inputs.items())}

    def read_manifest(self) -> dict | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError:
            return None  # a manifest cut by a kill means the stage did not finish

    def is_complete(self) -> bool:
        """Complete, same config and inputs, and its outputs as the manifest recorded them."""
        return self.matches() and self.changed_outputs() is None

    def matches(self) -> bool:
        """The manifest says complete, with this config hash and these input hashes."""
        manifest = self.read_manifest()
        return bool(
            manifest
            and manifest.get("status") == "complete"
            and manifest.get("config_hash") == self.config_hash
            and manifest.get("input_hashes") == self.input_hashes()
        )

    def changed_outputs(self) -> str | None:
        """What differs from the outputs the manifest recorded (None: all as written).

        Manifests written before outputs were recorded have nothing to compare.
        """
        manifest = self.read_manifest() or {}
        return changed_outputs(self.dir, manifest.get("outputs") or {})

    def write_manifest(self, status: str, started: float, extra: dict | None = None) -> dict:
        manifest = {
            "stage": self.name,
            "status": status,
            "config_hash": self.config_hash,
            "input_hashes": self.input_hashes(),
            "seed": self.seed,
            "packages": package_versions(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)),
            "started_epoch": started,
            "seconds": round(time.time() - started, 2),
            **(extra or {}),
        }
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        os.replace(tmp, self.manifest_path)
        return manifest

    @contextmanager
    def running(self) -> Iterator[dict]:
        """Mark the stage running, then complete (or failed) with its timing.

        The body may put figures into the yielded dict; they land in the manifest.
        """
        started = time.time()
        self.write_manifest("running", started)
        extra: dict = {}
        try:
            yield extra
        except BaseException:
            self.write_manifest("failed", started, extra)
            raise
        self.write_manifest("complete", started, {**extra, "outputs": output_files(self.dir)})


def check_writable(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise BenrlError(f"output folder {run_dir} is not writable ({e.strerror})") from e


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder for one writer; a second writer gets a BenrlError naming the holder.

    `fcntl.flock` on `<run>/.lock` (the kernel drops it when the holder exits, also on
    a kill, so no stale lock survives a crash); the file records the holder's pid for
    the message. The `filelock` package would do the locking but cannot say who holds it.
    """
    check_writable(run_dir)
    path = run_dir / ".lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise BenrlError(f"cannot open the lock file {path} ({e.strerror})") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise BenrlError(
            f"run folder {run_dir} is in use by another benrl process (pid {holder}); "
            "wait for it to finish or choose another --out"
        ) from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
