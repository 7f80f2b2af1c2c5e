"""seqae.progress: the progress bar."""

from __future__ import annotations

import pytest


def test_progress_bar_counts_and_wraps_an_iterable(capsys) -> None:
    from seqae.progress import progress_bar

    with progress_bar(10, "extract", "window") as bar:
        bar.update(4)
        assert bar.n == 4
    assert list(progress_bar(3, "evaluate", "batch", enabled=False, iterable=iter("abc"))) == ["a", "b", "c"]
    assert "window" in capsys.readouterr().err  # the enabled bar drew on stderr, in its unit


def test_a_phase_without_a_bar_logs_its_progress_and_its_end(monkeypatch, caplog, capsys) -> None:
    import seqae.progress as progress

    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)
    with (
        caplog.at_level("INFO", logger="seqae"),
        progress.PhaseProgress(3, "trees n=9 x2 ML search", "round", False) as phase,
    ):
        for k in range(3):
            phase.update(**{"logL/site": f"-1.{k}"})
    lines = [r.getMessage() for r in caplog.records]
    # One line per unit but the last (the interval is 0 here), then the phase's end.
    assert len(lines) == 3 and all(line.startswith("trees n=9 x2 ML search: ") for line in lines)
    assert "1/3 rounds" in lines[0] and "ETA" in lines[0] and "logL/site -1.0" in lines[0]
    assert "3 rounds in" in lines[2] and "logL/site -1.2" in lines[2]
    with caplog.at_level("INFO", logger="seqae"), progress.PhaseProgress(1, "ML search", "round", False) as phase:
        phase.update()
    assert caplog.records[-1].getMessage().startswith("ML search: 1 round in ")
    assert capsys.readouterr().err == ""  # no bar


def test_a_phase_that_fails_logs_no_end_and_a_drawn_phase_logs_nothing(caplog) -> None:
    from seqae.progress import PhaseProgress

    with caplog.at_level("INFO", logger="seqae"):
        with pytest.raises(RuntimeError, match="stopped"), PhaseProgress(5, "distance fit", "step", False) as phase:
            phase.update()
            raise RuntimeError("stopped")
        with PhaseProgress(2, "likelihood training", "epoch", True) as phase:
            phase.update()
            phase.update()
    assert caplog.records == []  # the 60 s interval never passed; the failed phase did not end


def test_duration_reads_as_a_person_would() -> None:
    from seqae.progress import duration

    assert [duration(x) for x in (40, 420, 5400, float("nan"))] == ["40 s", "7 min", "1.5 h", "?"]
