"""nas.atomic: the one helper for temp-file-then-rename writes."""

from __future__ import annotations

import pytest

from nas.atomic import atomic_target, write_atomic


def test_write_atomic_replaces_text_and_bytes(tmp_path):
    path = tmp_path / "config.json"
    write_atomic(path, "old")
    write_atomic(path, b"\x00new")
    assert path.read_bytes() == b"\x00new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "curve.png"
    write_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_target(path) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png"
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curve.png"]


def test_written_files_get_the_usual_mode(tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "metrics.json", "{}")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "metrics.json").stat().st_mode) == 0o644
