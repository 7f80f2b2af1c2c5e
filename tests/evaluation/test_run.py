"""seqae.evaluation.run: evaluate_model on a tiny windows file and a model of each kind: metrics.json, the
two-level model's bottleneck and site metrics, the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqae.cli import main
from seqae.evaluation import DEFAULT_EVALUATE_SETTINGS, METRICS_KEYS
from tests.evaluation.helpers import N_WINDOWS, TINY, TRACKS, WINDOW_LEN

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _dotted(data: dict, key: str) -> Any:
    for part in key.split("."):
        assert isinstance(data, dict) and part in data, f"metrics.json has no {key!r}"
        data = data[part]
    return data


# ---------------------------------------------------------------- evaluate_model


def test_metrics_json_has_every_documented_key(evaluated: dict[str, Any]) -> None:
    for kind, metrics in evaluated["metrics"].items():
        on_disk = json.loads((evaluated["outdir"][kind] / "metrics.json").read_text())
        assert on_disk == metrics
        for key in METRICS_KEYS:
            _dotted(on_disk, key)
        assert on_disk["model"]["kind"] == ("plain" if kind == "ar" else kind)
        assert on_disk["data"]["n_test"] == N_WINDOWS["test"] and on_disk["data"]["n_train"] == N_WINDOWS["train"]
        assert set(on_disk["probes"]["blocks"]) == {"chrom", "gene"}
        assert 0.0 <= on_disk["reconstruction"]["base_accuracy"] <= 1.0
        assert 0.0 <= on_disk["reconstruction"]["pca_base_accuracy"] <= 1.0
        assert set(on_disk["reconstruction"]["track_pearson"]) == set(TRACKS)
        anomaly = on_disk["anomaly"]
        for prefix in ("", "seq_", "seq_corrected_", "pca_", "markov_"):
            for control in ("shuffled", "foreign"):
                assert 0.0 <= anomaly[f"{prefix}auroc_{control}"] <= 1.0
        assert anomaly["markov_order"] == DEFAULT_EVALUATE_SETTINGS["markov_order"]
        # A window and its shuffle share their composition; the gain is the composition less the model's error.
        composition = anomaly["composition_seq_score"]
        assert composition["real"] == pytest.approx(composition["shuffled"]) and 0.0 < composition["real"] <= np.log(4)
        for control, gain in anomaly["seq_gain_over_composition"].items():
            assert gain == pytest.approx(composition[control] - anomaly["mean_seq_score"][control])
        # Every test window is a peak or a background window, each kind scored against its own shuffles.
        assert set(anomaly["by_kind"]) == {"background", "peak"}
        assert sum(entry["n"] for entry in anomaly["by_kind"].values()) == N_WINDOWS["test"]
        for entry in anomaly["by_kind"].values():
            assert all(
                0.0 <= entry[f"{p}auroc_shuffled"] <= 1.0 for p in ("", "seq_", "seq_corrected_", "pca_", "markov_")
            )
        assert 0.0 <= on_disk["disentanglement"]["mig"]["latent"] <= 1.0
        assert 0.0 <= on_disk["disentanglement"]["dci"]["latent"]["informativeness"] <= 1.0
    assert evaluated["metrics"]["plain"]["vae"] is None and evaluated["metrics"]["plain"]["vq"] is None
    assert evaluated["metrics"]["vq"]["probes"]["baseline_row"] == "kmer3+4"
    assert "kmer3+4" in evaluated["metrics"]["vq"]["probes"]["accuracy"]
    vq = evaluated["metrics"]["vq"]["vq"]
    assert set(vq["perplexity"]) == {"chrom", "gene", "residual"}
    assert all(1.0 <= p <= TINY["vq"]["codebook_size"] for p in vq["perplexity"].values())
    assert all(0.0 < u <= 1.0 for u in vq["usage"].values())
    vae = evaluated["metrics"]["vae"]["vae"]
    assert set(vae["spectrum_distance"]) == {"3", "4", "5"}
    for entry in vae["spectrum_distance"].values():
        assert (
            0.0 <= entry["train_vs_test"] < entry["generated_vs_test"] <= 1.0
        )  # an untrained VAE is worse than real data


def test_two_level_model_reports_its_bottleneck_latent_contribution_and_sites(evaluated: dict[str, Any]) -> None:
    ar, plain = evaluated["metrics"]["ar"], evaluated["metrics"]["plain"]
    bottleneck = ar["reconstruction"]["bottleneck"]
    assert bottleneck["decoder"] == "autoregressive" and bottleneck["local_bits_per_base"] == pytest.approx(0.5)
    assert bottleneck["local_codes"] == WINDOW_LEN // 8 and bottleneck["global_coordinates"] == 16
    # PCA with one component per global coordinate and per local code, and next-base accuracy beside it.
    assert bottleneck["pca_same_dims_n_components"] == 16 + WINDOW_LEN // 8
    assert 0.0 <= bottleneck["pca_same_dims_base_accuracy"] <= 1.0 and 0.0 <= bottleneck["next_base_accuracy"] <= 1.0
    assert plain["reconstruction"]["bottleneck"]["local_codes"] == 0 and plain["anomaly"]["latent_contribution"] is None
    contribution = ar["anomaly"]["latent_contribution"]
    # Against the decoder's own chain over its reach, per control.
    for control in ("real", "shuffled", "foreign"):
        assert contribution["vs_chain_nats_per_base"][control] == pytest.approx(
            contribution["no_latent_mean_seq_score"][control] - ar["anomaly"]["mean_seq_score"][control], abs=1e-5
        )
    assert contribution["real_minus_shuffled"] == pytest.approx(
        contribution["nats_per_base"]["real"] - contribution["nats_per_base"]["shuffled"]
    )
    # The latent path reads no reach: its baseline is the order-k chain, and the chain over
    # the reach (the anomaly score) is reported beside it.
    assert contribution["baseline"] == "order_k_chain"
    for control in ("real", "shuffled", "foreign"):
        assert contribution["nats_per_base"][control] == pytest.approx(
            contribution["baseline_mean_seq_score"][control] - ar["anomaly"]["mean_seq_score"][control], abs=1e-5
        )
    assert contribution["vs_chain_nats_per_base"] != contribution["nats_per_base"]
    # Sites: 8 bp in every third test window; the local code at each site against its TF.
    sites = ar["sites"]
    assert sites["n_sites_in_windows"] == len(range(0, N_WINDOWS["test"], 3))
    assert sites["reconstruction"]["n_site_bases"] == 8 * sites["n_sites_in_windows"]
    assert sites["reconstruction"]["n_site_bases"] + sites["reconstruction"]["n_background_bases"] == (
        N_WINDOWS["test"] * WINDOW_LEN
    )
    information = sites["local_code_tf_information"]
    assert information["n_sites"] == sites["n_sites_in_windows"] and information["label_entropy_bits"] == pytest.approx(
        1.0
    )
    assert plain["sites"] is None
    # Swaps are decoded base after base from the recipient's local codes.
    assert ar["swap"]["chrom"]["computed"] is True or ar["swap"]["chrom"]["skipped"]


def test_cli_evaluate_passes_its_arguments(
    evaluated: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import seqae.evaluation

    calls = []

    def fake(model, windows, outdir, settings=None, device=None, progress=True):
        calls.append((Path(model), Path(windows), Path(outdir), settings, device, progress))
        return {"model": {"name": "m"}, "data": {"n_test": 1}, "timings": {"total": 0.0}}

    monkeypatch.setattr(seqae.evaluation, "evaluate_model", fake)
    argv = ["-q", "evaluate", "--model", "m/best.pt", "--windows", "w.h5", "--outdir", str(tmp_path), "--device", "cpu"]
    assert main(argv) == 0
    assert calls == [(Path("m/best.pt"), Path("w.h5"), tmp_path, None, "cpu", False)]


def test_cli_evaluate_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "--model", str(tmp_path / "missing.pt"), "--windows", "w.h5", "--outdir", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pt" in err[0]


def test_a_windows_file_without_windows_is_said_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file the extraction left empty was reported as 'no windows in the test split (test_fraction is 0 ...)',
    which sent the user to the split settings."""
    from seqae.windows.store import WindowsSchema, WindowsWriter
    from tests.evaluation.helpers import FLANK, TRACKS, WINDOW_LEN, model_file, windows_file

    labels = windows_file(tmp_path / "w.h5")
    model = model_file(tmp_path / "m.pt", tmp_path / "w.h5", labels, "plain", train_steps=1)
    with WindowsWriter(tmp_path / "empty.h5", WindowsSchema(WINDOW_LEN, FLANK, TRACKS, "log1p"), "float16") as w:
        w.write_labels(labels.iloc[:0])
    argv = ["evaluate", "--model", str(model), "--windows", str(tmp_path / "empty.h5"), "--outdir", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty.h5: no windows at all (the extraction kept none" in err[0], err


def test_evaluate_refuses_windows_of_another_length_as_embed_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """evaluate read the centre of longer windows without a word (and metrics.json named the other file),
    where embed refused the same file: both now use one check (seqae.checkpoint.check_model_fits)."""
    import numpy as np

    from seqae.windows.store import WindowsSchema, WindowsWriter
    from tests.evaluation.helpers import FLANK, TRACKS, WINDOW_LEN, model_file, windows_file

    labels = windows_file(tmp_path / "w.h5")
    model = model_file(tmp_path / "m.pt", tmp_path / "w.h5", labels, "plain", train_steps=1)
    longer = WindowsSchema(WINDOW_LEN + 50, FLANK, TRACKS, "log1p")
    rng = np.random.default_rng(0)
    with WindowsWriter(tmp_path / "longer.h5", longer, "float16") as w:
        w.append(
            rng.integers(0, 4, (len(labels), longer.seq_len), dtype=np.uint8),
            np.zeros((len(labels), len(TRACKS), longer.seq_len), dtype=np.float16),
        )
        w.write_labels(labels)
    for command in ("evaluate", "embed"):
        argv = [
            command,
            "--model",
            str(model),
            "--windows",
            str(tmp_path / "longer.h5"),
            "--outdir",
            str(tmp_path / command),
        ]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"window_len is {WINDOW_LEN + 50} here, {WINDOW_LEN} for the model" in err[0], err
