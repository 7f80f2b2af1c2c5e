"""seqae.progress: the progress bar."""

from __future__ import annotations


def test_progress_bar_counts_and_wraps_an_iterable(capsys) -> None:
    from seqae.progress import progress_bar

    with progress_bar(10, "extract", "window") as bar:
        bar.update(4)
        assert bar.n == 4
    assert list(progress_bar(3, "evaluate", "batch", enabled=False, iterable=iter("abc"))) == ["a", "b", "c"]
    assert "window" in capsys.readouterr().err  # the enabled bar drew on stderr, in its unit
