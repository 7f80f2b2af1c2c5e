"""The seqae command line as a process: exit statuses and signals."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from seqae import cli
from seqae.errors import ConfigError
from seqae.fileio import atomic_output


def test_sigterm_removes_the_file_being_written(tmp_path, monkeypatch, capsys):
    """A job stopped by its scheduler (SIGTERM) leaves no temporary file beside its outputs."""
    target = tmp_path / "out" / "metrics.csv"

    def writes_then_is_terminated(args) -> None:
        with atomic_output(target) as tmp:
            Path(tmp).write_text("half a table")
            os.kill(os.getpid(), signal.SIGTERM)  # delivered here, mid-write
            Path(tmp).write_text("the whole table")

    monkeypatch.setattr(cli, "_cmd_compare", writes_then_is_terminated)
    before = signal.getsignal(signal.SIGTERM)
    status = cli.main(["compare", "--metrics", "m.json", "--out", str(tmp_path / "c.tsv")])
    assert status == 128 + signal.SIGTERM
    assert "terminated (SIGTERM)" in capsys.readouterr().err
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before  # the caller's handler is back


def test_a_second_sigterm_does_not_interrupt_the_clean_up(tmp_path, monkeypatch, capsys):
    """Schedulers may signal a job twice; the second SIGTERM must not cut the first one's clean-up short."""
    target = tmp_path / "out" / "checkpoint.pt"

    def terminated_twice(args) -> None:
        with atomic_output(target) as tmp:
            Path(tmp).write_text("half a checkpoint")
            os.kill(os.getpid(), signal.SIGTERM)

    real_unlink = Path.unlink

    def unlink_after_another_sigterm(self, *a, **k):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the temporary file is being removed
        return real_unlink(self, *a, **k)

    monkeypatch.setattr(cli, "_cmd_compare", terminated_twice)
    monkeypatch.setattr(Path, "unlink", unlink_after_another_sigterm)
    status = cli.main(["compare", "--metrics", "m.json", "--out", str(tmp_path / "c.tsv")])
    assert status == 128 + signal.SIGTERM
    assert list(target.parent.iterdir()) == []


def test_help_is_plain_text_and_every_command_has_a_description() -> None:
    parser = cli.build_parser()
    top = " ".join(parser.format_help().split())
    assert "``" not in top and "`" not in top and "seqae COMMAND --help" in top
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():
        text = command.format_help()
        assert f"seqae {name}: " in text, text  # a description line below the usage
        assert "``" not in text


def test_trees_runs_on_the_defaults_or_a_config_without_genomes(tmp_path, monkeypatch):
    """`seqae trees` on one's own alignments needs no configuration, or one with only a trees: section."""
    from seqae.config import load_config
    from seqae.phylo import stage

    seen = []
    monkeypatch.setattr(
        stage, "run_family", lambda fasta, outdir, settings, **kw: seen.append(settings) or {"family": "x"}
    )
    base = ["--quiet", "trees", "--family", "x", "--fasta", str(tmp_path / "x.fa"), "--outdir", str(tmp_path / "o")]
    assert cli.main(base) == 0
    defaults = load_config(text="{}", genomes_required=False)
    assert seen[0] == {**defaults["trees"], "seed": defaults["seed"]}
    config = tmp_path / "trees.yaml"
    config.write_text("seed: 3\ntrees:\n  adversary_check: 0\n  latent_tree: {perturbations: 2}\n")
    assert cli.main([*base, "--config", str(config)]) == 0
    assert seen[1]["seed"] == 3 and seen[1]["adversary_check"] == 0 and seen[1]["latent_tree"]["perturbations"] == 2
    config.write_text("trees:\n  adversary_chek: 0\n")  # still checked against the schema
    assert cli.main([*base, "--config", str(config)]) != 0 and len(seen) == 2
    with pytest.raises(ConfigError, match="'genomes' is a required property"):
        load_config(text="{}")  # the commands that read genomes still need them


def test_counts_below_one_and_a_shard_without_its_count_are_refused(tmp_path, capsys):
    """--shards 0 ran as one shard, and --shards without --shard wrote the whole embedding, silently."""
    for argv, message in (
        (["extract-plan", "--config", "c.yaml", "--out", "w.h5", "--shards", "0"], "argument --shards: 0 is below 1"),
        (["extract", "--config", "c.yaml", "--out", "w.h5", "--threads", "x"], "argument --threads: 'x' is not"),
        (["embed-gather", "--model", "m", "--windows", "w", "--outdir", "o", "--shards", "-3"], "-3 is below 1"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2 and message in capsys.readouterr().err
    status = cli.main(["embed", "--model", "m.pt", "--windows", "w.h5", "--outdir", str(tmp_path), "--shards", "2"])
    assert status == 2
    assert "--shard and --shards go together" in capsys.readouterr().err


def test_config_json_errors_name_the_option(tmp_path, capsys):
    """They said "config:1", a file that does not exist."""
    out = str(tmp_path / "w.h5")
    for text, message in (('{"seed": ', "--config-json:1: not valid YAML"), ('{"seed": "x"}', "--config-json: seed:")):
        assert cli.main(["-q", "extract", "--config-json", text, "--out", out]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
