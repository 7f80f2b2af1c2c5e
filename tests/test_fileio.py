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
