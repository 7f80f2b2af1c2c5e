"""seqae report: an HTML report from whatever outputs exist."""

from __future__ import annotations

import logging
import os
from base64 import urlsafe_b64encode
from pathlib import Path

from seqae.cli import main
from seqae.figure import plt, save_figure
from seqae.report import build_report, incomplete_outputs, summary_lines


def figure(path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [0, 1])
    return save_figure(fig, path)


def write_in_order(*paths: Path) -> None:
    """Write each path (a figure for a .png), modified 1 s, 2 s, ... after the epoch in that order."""
    for when, path in enumerate(paths, start=1):
        if path.suffix == ".png":
            figure(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        os.utime(path, ns=(1_000_000_000 * when,) * 2)


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


def test_figures_whose_inputs_changed_after_them_are_marked(tmp_path: Path, caplog) -> None:
    """Windows rebuilt or a model removed by a failed rerun: the old figures are shown, marked."""
    results = tmp_path / "results"
    peaks = tmp_path / "peaks.bed"
    windows = results / "windows" / "windows.h5"
    model = results / "models" / "plain" / "best.pt"
    qc = results / "windows" / "extract_qc.png"
    probes = results / "models" / "plain" / "evaluate" / "probe_matrix.png"
    curves = results / "models" / "plain" / "loss_curves.png"
    write_in_order(peaks, windows, qc, model, curves, probes)
    config = {"results": str(results), "models": {"plain": {}}, "trees": {"families": []},
              "genomes": [{"fasta": str(tmp_path / "g.fa"), "tfs": [{"peaks": str(peaks), "bigwig": None}]}]}  # fmt: skip
    result = build_report(results, tmp_path / "r.html", config=config, workdir=tmp_path)
    assert len(result.figures) == 3 and not result.out_of_date
    assert "earlier run" not in (tmp_path / "r.html").read_text()

    os.utime(peaks, ns=(10**11,) * 2)  # new peaks, the windows not rebuilt yet
    result = build_report(results, tmp_path / "r.html", config=config, workdir=tmp_path)
    assert set(result.out_of_date) == {qc, probes, curves}
    assert result.out_of_date[qc] == f"{peaks} was written after it"

    os.utime(peaks, ns=(1_000_000_000,) * 2)
    os.utime(windows, ns=(10**11,) * 2)  # the windows rebuilt, training failed and removed its outputs
    model.unlink()
    curves.unlink()
    result = build_report(results, tmp_path / "r.html", config=config, workdir=tmp_path)
    assert result.out_of_date == {
        qc: "windows/windows.h5 was written after it",
        probes: "models/plain/best.pt is gone (removed, or a rerun of its job failed)",
    }
    page = (tmp_path / "r.html").read_text()
    assert page.count("May show an earlier run") == 2 and "2 figures may show an earlier run" in page
    with caplog.at_level("INFO", logger="seqae"):
        for line in summary_lines(result):
            logging.getLogger("seqae").info("%s", line)
    assert "2 figures may show an earlier run" in caplog.text


def test_comparison_and_tree_figures_follow_their_inputs(tmp_path: Path) -> None:
    results = tmp_path / "results"
    fasta = tmp_path / "fam.fa"
    row = results / "trees" / "fam" / "fam.tsv"
    tree_png = results / "trees" / "fam" / "fam.png"
    nrf = results / "trees" / "trees_nrf.png"
    metrics = results / "models" / "plain" / "evaluate" / "metrics.json"
    comparison = results / "models" / "comparison.png"
    windows, model = results / "windows" / "windows.h5", results / "models" / "plain" / "best.pt"
    write_in_order(fasta, row, tree_png, nrf, windows, model, metrics, comparison)
    config = {"results": str(results), "models": {"plain": {}}, "trees": {"families": [{"name": "fam", "fasta": str(fasta)}]}}  # fmt: skip
    assert not build_report(results, tmp_path / "r.html", config=config, workdir=tmp_path).out_of_date
    os.utime(fasta, ns=(10**11,) * 2)
    os.utime(metrics, ns=(10**11,) * 2)
    result = build_report(results, tmp_path / "r.html", config=config, workdir=tmp_path)
    assert set(result.out_of_date) == {tree_png, nrf, comparison}
    # Without a config the alignment is unknown; the tables under results still count.
    result = build_report(results, tmp_path / "r.html", workdir=tmp_path)
    assert set(result.out_of_date) == {comparison}
