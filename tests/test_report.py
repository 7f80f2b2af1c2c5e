"""seqae report: an HTML report from whatever outputs exist."""

from __future__ import annotations

from base64 import urlsafe_b64encode
from pathlib import Path

from seqae.cli import main
from seqae.figure import plt, save_figure
from seqae.report import build_report, incomplete_outputs


def figure(path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    return save_figure(fig, path)


def test_report_shows_what_exists_and_lists_what_is_missing(tmp_path: Path) -> None:
    results = tmp_path / "results"
    figure(results / "windows" / "extract_qc.png")
    figure(results / "models" / "plain" / "loss_curves.png")
    config = {"results": str(results), "models": {"plain": {}, "vq": {}}, "trees": {"families": [{"name": "f"}]}}
    result = build_report(results, tmp_path / "r.html", config=config, workdir=tmp_path)
    assert [p.name for p in result.figures] == ["extract_qc.png", "loss_curves.png"]
    assert str(results / "models" / "vq" / "loss_curves.png") in result.missing
    assert str(results / "trees" / "f" / "f.png") in result.missing and not result.incomplete
    page = (tmp_path / "r.html").read_text()
    assert page.count("<img") == 2 and "Not in this report" in page


def test_incomplete_outputs_are_read_from_snakemakes_records(tmp_path: Path) -> None:
    folder = tmp_path / ".snakemake" / "incomplete"
    folder.mkdir(parents=True)
    short = "results/models/plain/best.pt"
    (folder / urlsafe_b64encode(short.encode()).decode()).write_text("")
    long_name = "results/" + "x" * 300 + "/loss_curves.png"
    encoded = urlsafe_b64encode(long_name.encode()).decode()
    (folder / f"@{encoded[:254]}").mkdir()
    (folder / f"@{encoded[:254]}" / encoded[254:]).write_text("")
    assert incomplete_outputs(tmp_path) == sorted([short, long_name])


def test_cli_report_without_a_config_uses_what_it_finds(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.chdir(tmp_path)
    figure(tmp_path / "results" / "models" / "m" / "evaluate" / "probe_matrix.png")
    with caplog.at_level("INFO", logger="seqae"):
        assert main(["report", "--out", "report.html"]) == 0
    assert "report with 1 figures" in caplog.text and "not there yet" in caplog.text
    assert "probe_matrix.png" in (tmp_path / "report.html").read_text()


def test_cli_report_names_a_bad_config_or_results_path_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    Path("syntax.yaml").write_text("seed: 1\nmodels: {plain: {kind: plain}\n  x: 1\n")
    Path("list.yaml").write_text("- 1\n- 2\n")
    Path("cfg.json").write_text("{}")
    for args, message in (
        (["--config", "syntax.yaml"], "syntax.yaml:3: not valid YAML ("),
        (["--config", "list.yaml"], "list.yaml: expected a mapping of keys at the top level"),
        (["--results", "cfg.json"], "cfg.json: is a file; give the results folder of a run"),
        (["--results", "."], "report.html: is a folder; give the path of a file to write"),
    ):
        if args[-1] == ".":
            Path("report.html").mkdir()
        assert main(["-q", "report", *args, "--out", "report.html"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
