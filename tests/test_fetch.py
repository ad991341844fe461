"""`benrl data fetch`: pinned sources, checksums, layout and provenance, against a local server.

The server (loopback only) stands in for GitHub and OpenAI's blob store: it serves the
shared sample copies under the pinned URLs' host/path, with SimpleQA in its upstream
column names. Skips when the shared copies are absent.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from benrl.data.fetch import fetch, sources
from benrl.data.realdata import load_realdata
from benrl.errors import BenrlError

REALDATA_ROOT = Path(
    os.environ.get("BENRL_REALDATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
)
SETS = ["xstest", "simpleqa"]


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """(base URL, folder) of a loopback server holding the sets' files at their source paths."""
    if not REALDATA_ROOT.is_dir():
        pytest.skip(f"real datasets not found at {REALDATA_ROOT} (set BENRL_REALDATA)")
    folder = tmp_path / "mirror"
    for rel in ("xstest/xstest_prompts.csv", "simpleqa/simple_qa_test_set.csv"):
        url = urlsplit(sources()[rel]["url"])
        target = folder / url.netloc / url.path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        data = (REALDATA_ROOT / rel).read_bytes()
        if rel.startswith("simpleqa"):  # as OpenAI publishes it
            data = data.replace(b"metadata,question,true_answer", b"metadata,problem,answer", 1)
        target.write_bytes(data)
    handler = functools.partial(Quiet, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_fetch_writes_the_layout_the_adapters_read(mirror, tmp_path: Path) -> None:
    url, _ = mirror
    out = tmp_path / "realdata"
    provenance = fetch(SETS, out, mirror=url)
    for rel in provenance:
        assert (out / rel).read_bytes() == (REALDATA_ROOT / rel).read_bytes()
        assert provenance[rel]["sha256"] == sources()[rel]["sha256"]
        assert "@" in provenance[rel]["revision"] or "blob" in provenance[rel]["revision"]
    assert json.loads((out / "provenance.json").read_text()) == provenance
    assert len(load_realdata("simpleqa", out).records) == 4326  # renamed header read


def test_a_changed_source_fails_its_checksum_and_writes_nothing(mirror, tmp_path: Path) -> None:
    url, folder = mirror
    rel = "xstest/xstest_prompts.csv"
    served = folder / urlsplit(sources()[rel]["url"]).netloc
    served = served / urlsplit(sources()[rel]["url"]).path.lstrip("/")
    served.write_bytes(served.read_bytes() + b"extra,row\n")
    with pytest.raises(BenrlError, match=r"checksum mismatch for xstest/xstest_prompts\.csv"):
        fetch(["xstest"], tmp_path / "out", mirror=url)
    assert not (tmp_path / "out" / rel).exists()


def test_unreachable_source_and_unknown_set_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(BenrlError, match="unknown set"):
        fetch(["no_such_set"], tmp_path)
    with pytest.raises(BenrlError, match="download failed"):
        fetch(["xstest"], tmp_path, mirror="http://127.0.0.1:9")  # nothing listens on port 9
