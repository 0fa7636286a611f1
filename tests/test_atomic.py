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


def test_staged_folder_becomes_a_new_folder_with_the_usual_mode(tmp_path):
    import os
    import stat

    from nas.atomic import staged_folder

    mask = os.umask(0o022)
    try:
        with staged_folder(tmp_path / "bundle") as stage:
            assert stage.parent == tmp_path and not (tmp_path / "bundle").exists()
            (stage / "a.txt").write_text("a")
    finally:
        os.umask(mask)
    assert (tmp_path / "bundle" / "a.txt").read_text() == "a"
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_staged_folder_replaces_owned_files_keeps_the_rest(tmp_path):
    from nas.atomic import staged_folder

    out = tmp_path / "bundle"
    out.mkdir()
    for name, text in (("a.txt", "old a"), ("stale.txt", "old stale"), ("mine.txt", "user")):
        (out / name).write_text(text)
    with staged_folder(out, owned=("a.txt", "stale.txt", "never.txt")) as stage:
        (stage / "a.txt").write_text("new a")
        (stage / "b.txt").write_text("new b")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "new a", "b.txt": "new b", "mine.txt": "user"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_a_failing_staged_build_leaves_the_folder_as_it_was(tmp_path):
    from nas.atomic import staged_folder

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "a.txt").write_text("old a")
    for target in (out, tmp_path / "new"):
        with pytest.raises(RuntimeError):
            with staged_folder(target, owned=("a.txt",)) as stage:
                (stage / "a.txt").write_text("half")
                raise RuntimeError("check failed")
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.txt": "old a"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]
