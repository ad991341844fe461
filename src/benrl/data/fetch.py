"""`benrl data fetch [SETS] --to DIR`: the public eval datasets, downloaded once, checked.

A GPU box starts without the datasets folder that `eval.realdata.root` names. This
command downloads every file the chosen sets read (`realdata.Adapter.files`) from its
public source at a pinned revision (`realdata_sources.json`: a commit for GitHub
sources, a fixed blob otherwise), applies the one documented transform a set needs
(SimpleQA's header renamed to the adapter's column names), checks the file's SHA-256
against the pinned value, and only then moves it into the layout the adapters read.
`DIR/provenance.json` records, per file, the URL, revision, checksum and fetch time.

Explicit only: a run never downloads anything. Several sets carry canary strings and
are evaluation data: never train on them. `--mirror URL` fetches the same paths from a
mirror (or, in the tests, from a local server standing in for the sources).
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from benrl.data.realdata import REALDATA, list_realdata
from benrl.errors import BenrlError

TIMEOUT_S = 60


def sources() -> dict[str, dict]:
    """Relative path under the root -> {url, revision, sha256, transform?}."""
    return json.loads(resources.files("benrl.data").joinpath("realdata_sources.json").read_text())


def files_of(sets: list[str]) -> list[str]:
    """Every file the sets read (an empty list means every set)."""
    unknown = [s for s in sets if s not in list_realdata()]
    if unknown:
        raise BenrlError(f"unknown set(s) {unknown} (known: {', '.join(list_realdata())})")
    chosen = sets or list_realdata()
    return sorted({f for name in chosen for f in REALDATA[name].files})


def source_url(url: str, mirror: str | None) -> str:
    """The URL to download: the pinned one, or the same host and path under `mirror`."""
    if not mirror:
        return url
    parts = urlsplit(url)
    return f"{mirror.rstrip('/')}/{parts.netloc}{parts.path}"


def _simpleqa_header(data: bytes) -> bytes:
    # upstream columns are metadata,problem,answer; the adapter reads question,true_answer
    head, sep, rest = data.partition(b"\n")
    if head.strip() == b"metadata,problem,answer":
        head = b"metadata,question,true_answer"
    return head + sep + rest


TRANSFORMS = {"simpleqa_header": _simpleqa_header}


def download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise BenrlError(f"{url}: download failed ({e})") from None


def fetch(sets: list[str], to: Path, mirror: str | None = None) -> dict:
    """Download, check and place every file of `sets` under `to`; returns the provenance."""
    table = sources()
    files = files_of(sets)
    missing = [f for f in files if f not in table]
    if missing:
        raise BenrlError(f"no pinned source for {missing} (realdata_sources.json)")
    provenance_path = to / "provenance.json"
    provenance = json.loads(provenance_path.read_text()) if provenance_path.is_file() else {}
    for rel in files:
        spec = table[rel]
        target = to / rel
        if target.is_file() and _sha256(target.read_bytes()) == spec["sha256"]:
            continue  # already fetched and intact
        url = source_url(spec["url"], mirror)
        data = download(url)
        if transform := spec.get("transform"):
            data = TRANSFORMS[transform](data)
        digest = _sha256(data)
        if digest != spec["sha256"]:
            raise BenrlError(
                f"{url}: checksum mismatch for {rel} (got {digest[:12]}, pinned "
                f"{spec['sha256'][:12]}); nothing written for it"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic: a killed fetch never leaves half a file
        provenance[rel] = {
            "url": spec["url"],
            "fetched_from": url,
            "revision": spec["revision"],
            "sha256": digest,
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "use": "evaluation only; never train on it (canary strings)",
        }
    to.mkdir(parents=True, exist_ok=True)
    provenance_path.write_text(json.dumps(provenance, indent=2, sort_keys=True))
    return provenance


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
