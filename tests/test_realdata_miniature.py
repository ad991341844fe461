"""The invented miniature of the public datasets loads through every packaged adapter."""

from __future__ import annotations

from pathlib import Path

from realdata_miniature import write_miniature

from benrl.data.realdata import list_realdata, load_realdata


def test_every_set_loads_from_the_miniature(tmp_path: Path) -> None:
    root = write_miniature(tmp_path / "realdata", list_realdata())
    for name in list_realdata():
        loaded = load_realdata(name, root)
        assert len(loaded.records) >= 2, name
        for record in loaded.records:
            assert record.source == f"real/{name}"
            assert record.messages[-1].role == "user"
            assert record.messages[-1].content.strip(), record.id
