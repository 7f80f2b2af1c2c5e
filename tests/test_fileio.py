"""seqae.fileio: the temporary files a killed run leaves."""

from __future__ import annotations

from seqae.fileio import remove_stale_temporaries


def test_stale_temporaries_of_a_killed_run_are_removed(tmp_path):
    """SIGKILL leaves the file being written; the next run in the folder removes it, and only it."""
    for name in (".checkpoint.pt.2a7dfde9da0c.tmp", ".metrics.csv.k3j_x9ab.tmp", ".best.pt.0123456789ab.tmp"):
        (tmp_path / name).write_bytes(b"")
    for keep in ("checkpoint.pt", ".notes.txt", ".checkpoint.ptx.tmp"):
        (tmp_path / keep).write_bytes(b"x")
    removed = remove_stale_temporaries(tmp_path, ["checkpoint.pt", "metrics.csv", "model.json"])
    assert sorted(p.name for p in removed) == [".checkpoint.pt.2a7dfde9da0c.tmp", ".metrics.csv.k3j_x9ab.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".best.pt.0123456789ab.tmp", ".checkpoint.ptx.tmp", ".notes.txt", "checkpoint.pt",
    ]  # fmt: skip


def test_outputs_where_a_folder_or_file_is_in_the_way_get_one_line(tmp_path):
    """A folder at an output's path, or a file where a folder must be: one line naming it, nothing written."""
    import os

    import pytest

    from seqae.errors import SeqaeError
    from seqae.fileio import atomic_output, output_folder

    (tmp_path / "taken").mkdir()
    with pytest.raises(SeqaeError) as err, atomic_output(tmp_path / "taken"):
        raise AssertionError("an output path in the way was opened")
    assert str(err.value) == f"{tmp_path / 'taken'}: is a folder; give the path of a file to write"
    (tmp_path / "cfg.json").write_text("{}")
    with pytest.raises(SeqaeError) as err, atomic_output(tmp_path / "cfg.json" / "deeper" / "out.tsv"):
        raise AssertionError("an output path in the way was opened")
    assert str(err.value).endswith(f"cannot write output here ({tmp_path / 'cfg.json'} is a file, not a folder)")
    with pytest.raises(SeqaeError) as err:
        output_folder(tmp_path / "cfg.json")
    assert str(err.value) == (
        f"{tmp_path / 'cfg.json'}: cannot create this output folder ({tmp_path / 'cfg.json'} is a file, not a folder)"
    )
    assert output_folder(tmp_path / "a" / "b").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["a", "cfg.json", "taken"]  # no temporary left behind
