"""Evaluation stage: block swaps, evaluate_model on a tiny model and windows file, compare, figures.

Everything is made here: a windows file of 400 windows of 64 bp whose
chromosomes differ strongly in GC (so the k-mer baseline reads ``chrom``), a
label that is ``chrom`` permuted across windows (which nothing can read), and
tiny models (16 channels) of each kind, briefly trained or untrained.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tiny_model

from seqae import __version__
from seqae.checkpoint import FORMAT_VERSION, MODEL_FORMAT, build_model, load_checkpoint, save_checkpoint
from seqae.cli import main
from seqae.compare import compare_models
from seqae.errors import ConfigError
from seqae.evaluation import (
    DEFAULT_EVALUATE_SETTINGS,
    EVALUATE_SETTINGS_HELP,
    METRICS_KEYS,
    TSS_BIN_NONE,
    evaluate_model,
    evaluate_settings,
    tss_bin_names,
    tss_distance_bins,
)
from seqae.evaluation.swaps import MIXTURE_KEPT_SHARES
from seqae.metrics import NOT_RECOVERABLE
from seqae.models import SequenceAutoencoder
from seqae.swap import swap_blocks
from seqae.windows.store import WindowsSchema, WindowsWriter

WINDOW_LEN = 64
FLANK = 4
TRACKS = ("TA", "TB")
CHROMS = {"chr1": (0.25, 0.5), "chr2": (0.45, 0.25), "chr3": (0.65, 0.15), "chr4": (0.8, 0.10)}  # GC, share
N_WINDOWS = {"train": 240, "val": 40, "test": 120}
# region_class counts per split: chance on test = share of the majority *train* class in test.
REGION_COUNTS = {
    "train": {"intergenic": 150, "promoter": 60, "gene_body": 30},
    "val": {"intergenic": 20, "promoter": 10, "gene_body": 10},
    "test": {"intergenic": 45, "promoter": 50, "gene_body": 25},
}
EXPECTED_REGION_CHANCE = 45 / 120  # majority train class is intergenic
FAMILIES = ["F1", "F2", "F3", ""]  # "" = no gene (unknown label)
TINY = tiny_model(vq={"codebook_size": 8, "n_groups": 2, "decay": 0.9})
FAST = {"judge_k": [3, 4], "dci_max_train": 200, "batch_size": 64}
# The two-level model: a local code sequence (16 codes per 8 bases) and an autoregressive decoder
# whose latent path reads a 3-base table (its chain also an 8-base reach), with a direct head.
TWO_LEVEL = {
    "decoder": {
        "kind": "autoregressive",
        "context": 3,
        "hidden": 16,
        "n_layers": 1,
        "latent_layers": 1,
        "reach": 8,
        "reach_width": 4,
        "latent_reach": False,
    },
    "local": {"enabled": True, "dim": 4, "codebook_size": 16},
    "weights": {"direct": 1.0},
    "head_gradient_cap": 0.0,
}


# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- fixtures


def _windows_file(path: Path, seed: int = 0) -> pd.DataFrame:
    """Write the tiny windows file; returns its label table."""
    rng = np.random.default_rng(seed)
    frames = []
    for split, n in N_WINDOWS.items():
        names = list(CHROMS)
        shares = np.array([CHROMS[c][1] for c in names])
        chrom = rng.choice(names, size=n, p=shares / shares.sum())
        region = np.concatenate([[k] * v for k, v in REGION_COUNTS[split].items()])
        rng.shuffle(region)
        family = rng.choice(FAMILIES, size=n)
        tss = np.where(family == "", np.nan, rng.normal(0, 8000, size=n).round())
        frames.append(
            pd.DataFrame(
                {"chrom": chrom, "gene_family": family, "tss_distance": tss, "region_class": region, "split": split}
            )
        )
    labels = pd.concat(frames, ignore_index=True)
    labels.insert(1, "start", np.arange(len(labels)) * 100)
    labels.insert(2, "end", labels["start"] + WINDOW_LEN)
    labels["chrom_shuffled"] = rng.permutation(labels["chrom"].to_numpy())
    labels["kind"] = np.where(np.arange(len(labels)) % 3 == 0, "background", "peak")
    n = len(labels)
    seq_len = WINDOW_LEN + 2 * FLANK
    gc = labels["chrom"].map({c: v[0] for c, v in CHROMS.items()}).to_numpy()
    u = rng.random((n, seq_len))
    at = (1 - gc[:, None]) / 2
    seq = np.where(u < at, 0, np.where(u < at + gc[:, None] / 2, 1, np.where(u < at + gc[:, None], 2, 3))).astype(
        np.uint8
    )
    tracks = np.log1p(rng.gamma(0.8, 2.0, size=(n, len(TRACKS), seq_len))).astype(np.float16)
    schema = WindowsSchema(WINDOW_LEN, FLANK, TRACKS, "log1p")
    with WindowsWriter(path, schema, track_dtype="float16") as writer:
        writer.append(seq, tracks)
        writer.write_labels(labels)
    return labels


def _train_windows(windows: Path, labels: pd.DataFrame) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """The train split's rows, base codes ``[N, L]`` (0-3) and tracks ``[N, T, L]``, flanks cropped."""
    from seqae.windows.reader import read_windows

    rows = np.flatnonzero(labels["split"] == "train")
    seq, tracks = read_windows(windows, rows)
    seq_t = torch.from_numpy(seq[:, FLANK : FLANK + WINDOW_LEN].astype(np.int64))
    tracks_t = torch.from_numpy(tracks[:, :, FLANK : FLANK + WINDOW_LEN].astype(np.float32))
    return rows, seq_t, tracks_t


def _model_file(
    path: Path,
    windows: Path,
    labels: pd.DataFrame,
    kind: str,
    train_steps: int,
    seed: int = 0,
    blocks: dict[str, dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A tiny model of ``kind`` (latent ``blocks``, default TINY's), trained ``train_steps`` Adam steps on the
    train windows, saved as a model file."""
    torch.manual_seed(seed)
    settings = copy.deepcopy(TINY)
    settings["kind"] = kind
    if blocks is not None:
        settings["blocks"] = copy.deepcopy(blocks)
    settings.update(copy.deepcopy(extra or {}))
    names = dict.fromkeys(b["label"] for b in settings["blocks"].values() if b["label"] is not None)
    categories = {c: sorted(x for x in labels[c].astype(str).unique() if x) for c in names}
    model = SequenceAutoencoder(settings, len(TRACKS), WINDOW_LEN, {c: len(v) for c, v in categories.items()}, "log1p")
    if train_steps:
        rows, seq, tracks = _train_windows(windows, labels)
        codes = {
            c: torch.tensor([cats.index(v) if v in cats else -1 for v in labels[c].astype(str).to_numpy()[rows]])
            for c, cats in categories.items()
        }
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        g = torch.Generator().manual_seed(seed)
        for step in range(train_steps):
            idx = torch.randint(0, len(rows), (32,), generator=g)
            out = model(seq[idx], tracks[idx], {c: v[idx] for c, v in codes.items()}, step=step)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        model.eval()
    state = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": f"tiny_{kind}" if not extra else f"tiny_{kind}_{'_'.join(extra)}",
        "model_init": model.init_kwargs,
        "model_state": model.state_dict(),
        "training": {},
        "seed": seed,
        "data": {"schema": WindowsSchema(WINDOW_LEN, FLANK, TRACKS, "log1p").to_dict(), "label_categories": categories},
        "epoch": 1,
        "step": train_steps,
        "val_loss": float("nan"),
        "seqae_version": __version__,
    }
    return save_checkpoint(state, path)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The windows file, one model per kind and their evaluations (figures drawn for the plain model only)."""
    root = tmp_path_factory.mktemp("evaluate")
    windows = root / "windows.h5"
    labels = _windows_file(windows)
    out: dict[str, Any] = {"root": root, "windows": windows, "labels": labels, "metrics": {}, "outdir": {}, "model": {}}
    settings = {**FAST, "labels": ["chrom", "gene_family", "region_class", "tss_bin", "chrom_shuffled"]}
    # Known sites for the two-level model's site metrics: 8 bp into every third test window.
    test = labels[labels["split"] == "test"].iloc[::3]
    sites = root / "sites.tsv"
    pd.DataFrame({"chrom": test["chrom"], "start": test["start"] + 10, "end": test["start"] + 18,
                  "tf": np.where(np.arange(len(test)) % 2, "TF_A", "TF_B")}).to_csv(sites, sep="\t", index=False)  # fmt: skip
    for kind, steps in (("plain", 25), ("vq", 5), ("vae", 0), ("ar", 25)):
        model_dir = root / kind
        model_dir.mkdir()
        if kind == "ar":
            model_path = _model_file(model_dir / "best.pt", windows, labels, "plain", steps, extra=TWO_LEVEL)
        else:
            model_path = _model_file(model_dir / "best.pt", windows, labels, kind, steps)
        outdir = root / f"eval_{kind}"
        if kind == "plain":
            # A training folder's loss curves are copied beside the evaluation.
            from seqae.figure import plt, save_figure

            fig, ax = plt.subplots()
            ax.plot([3, 2, 1.5], marker="o")
            save_figure(fig, model_dir / "loss_curves.png")
        run = {**settings, "figures": kind == "plain"}
        if kind == "vq":
            run["kmer_k"] = [3, 4]  # the multi-k baseline
        if kind == "vae":
            run = {**FAST, "figures": False}  # default labels: the blocks' labels, region_class, tss_bin
        if kind == "ar":
            run = {**settings, "figures": False, "truth_sites": str(sites)}
        out["metrics"][kind] = evaluate_model(model_path, windows, outdir, settings=run, device="cpu", progress=False)
        out["outdir"][kind] = outdir
        out["model"][kind] = model_path
    return out


def _dotted(data: dict, key: str) -> Any:
    for part in key.split("."):
        assert isinstance(data, dict) and part in data, f"metrics.json has no {key!r}"
        data = data[part]
    return data


# ---------------------------------------------------------------- swap


def test_swap_blocks_equals_decoding_the_hand_swapped_latent() -> None:
    torch.manual_seed(1)
    length = 64
    model = SequenceAutoencoder(tiny_model(), 2, length, {"chrom": 3, "gene_family": 2}).eval()
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(0, 4, (10, length), generator=g)
    tracks = torch.rand(10, 2, length, generator=g)
    donor = torch.randperm(10, generator=g)
    with torch.inference_mode():
        z = model.encode(seq, tracks)
        by_hand = z.clone()
        by_hand[:, 0:4] = z[donor, 0:4]  # the chrom block is the first 4 coordinates
        want_logits, want_tracks = model.decode(by_hand)
        plain_logits, _ = model.decode(z)
    logits, tracks_out = swap_blocks(model, seq, tracks, donor, "chrom", batch_size=3)  # batches of 3: same result
    assert logits.shape == (10, 4, length) and tracks_out.shape == (10, 2, length)
    torch.testing.assert_close(logits, want_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tracks_out, want_tracks, rtol=1e-5, atol=1e-5)
    # Identity donors give the plain reconstruction; a numpy donor index works too.
    same, _ = swap_blocks(model, seq, tracks, np.arange(10), "gene")
    torch.testing.assert_close(same, plain_logits, rtol=1e-5, atol=1e-5)
    with pytest.raises(KeyError, match="no latent block"):
        swap_blocks(model, seq, tracks, donor, "nope")
    with pytest.raises(ValueError, match="one entry per window"):
        swap_blocks(model, seq, tracks, donor[:5], "chrom")


# ---------------------------------------------------------------- labels and settings


def test_tss_bins_on_hand_made_distances() -> None:
    d = [-20000, -10001, -10000, -5000, -1001, -1000, -999, 0, 1000, 1001, 10000, 10001, np.nan]
    want = ["<-10k", "<-10k", "-10k..-1k", "-10k..-1k", "-10k..-1k", "-1k..1k", "-1k..1k", "-1k..1k",
            "-1k..1k", "1k..10k", "1k..10k", ">10k", TSS_BIN_NONE]  # fmt: skip
    assert tss_distance_bins(d).tolist() == want
    assert tss_bin_names() == ["<-10k", "-10k..-1k", "-1k..1k", "1k..10k", ">10k"]
    assert tss_distance_bins([-600, 0, 2500], edges=[-500, 500, 2000]).tolist() == ["<-500", "-500..500", ">2k"]


def test_settings_defaults_documented_and_checked() -> None:
    assert set(DEFAULT_EVALUATE_SETTINGS) == set(EVALUATE_SETTINGS_HELP)
    for key in ("test_max", "train_max", "kmer_k", "judge_k", "seed"):
        assert key in DEFAULT_EVALUATE_SETTINGS
    assert evaluate_settings({"kmer_k": [3, 4, 5]})["kmer_k"] == [3, 4, 5]
    with pytest.raises(ConfigError, match="evaluate.nope"):
        evaluate_settings({"nope": 1})
    with pytest.raises(ConfigError, match="evaluate.test_max"):
        evaluate_settings({"test_max": 0})
    with pytest.raises(ConfigError, match="evaluate.tss_bins"):
        evaluate_settings({"tss_bins": [10, 5]})
    with pytest.raises(ConfigError, match="evaluate.markov_order"):
        evaluate_settings({"markov_order": 0})
    with pytest.raises(ConfigError, match="evaluate.swap_decoding"):
        evaluate_settings({"swap_decoding": "greedy"})


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


def test_probe_values_and_chance(evaluated: dict[str, Any]) -> None:
    metrics = evaluated["metrics"]["plain"]
    probes = metrics["probes"]
    assert probes["feature_sets"] == ["chrom", "gene", "residual", "latent", "pca", "kmer4"]
    assert probes["labels"] == ["chrom", "gene_family", "region_class", "tss_bin", "chrom_shuffled"]
    for row in probes["accuracy"].values():
        assert all(0.0 <= v <= 1.0 for v in row.values())
    assert probes["chance"]["region_class"] == pytest.approx(EXPECTED_REGION_CHANCE)
    # chrom: majority train chromosome's share of the test windows.
    labels = evaluated["labels"]
    train, test = labels[labels.split == "train"], labels[labels.split == "test"]
    majority = train["chrom"].value_counts().idxmax()
    assert probes["chance"]["chrom"] == pytest.approx(np.mean(test["chrom"] == majority))
    # gene_family: windows without a gene are left out of the probe.
    fam_train, fam_test = train["gene_family"][train.gene_family != ""], test["gene_family"][test.gene_family != ""]
    assert probes["chance"]["gene_family"] == pytest.approx(np.mean(fam_test == fam_train.value_counts().idxmax()))
    # The long-format TSV holds the same numbers.
    table = pd.read_csv(evaluated["outdir"]["plain"] / "probe_matrix.tsv", sep="\t")
    assert len(table) == 6 * 5
    row = table[(table.features == "kmer4") & (table.label == "chrom")].iloc[0]
    assert row["accuracy"] == pytest.approx(probes["accuracy"]["kmer4"]["chrom"])
    block = probes["blocks"]["chrom"]
    assert block["kmer_baseline"] == pytest.approx(probes["accuracy"]["kmer4"]["chrom"])
    assert block["residual"]["residual"] == pytest.approx(probes["accuracy"]["residual"]["chrom"])


def test_shuffled_label_is_not_recoverable(evaluated: dict[str, Any]) -> None:
    probes = evaluated["metrics"]["plain"]["probes"]
    assert probes["recoverable"]["chrom"] is True  # GC differs by chromosome: the k-mer baseline reads it
    assert probes["accuracy"]["kmer4"]["chrom"] > probes["chance"]["chrom"] + 0.15
    assert probes["recoverable"]["chrom_shuffled"] is False
    assert probes["flag"]["chrom_shuffled"] == NOT_RECOVERABLE
    table = pd.read_csv(evaluated["outdir"]["plain"] / "probe_matrix.tsv", sep="\t", keep_default_na=False)
    assert set(table.loc[table.label == "chrom_shuffled", "flag"]) == {NOT_RECOVERABLE}


def test_block_trained_on_shuffled_label_probes_at_chance(evaluated: dict[str, Any], tmp_path: Path) -> None:
    """A block whose supervised head is trained on a label with no sequence signal can only memorise the
    training windows: its held-out probe must stay at chance (it would not if probes were scored on the
    windows the model and the probe were fitted on, where both read the label well above chance)."""
    from seqae.checkpoint import load_model
    from seqae.metrics import linear_probe

    windows, labels = evaluated["windows"], evaluated["labels"]
    blocks = {"shuffled": {"size": 4, "label": "chrom_shuffled"}, "residual": {"size": 8, "label": None}}
    path = _model_file(tmp_path / "best.pt", windows, labels, "plain", 100, blocks=blocks)
    run = {**FAST, "labels": ["chrom_shuffled"], "figures": False}
    probes = evaluate_model(path, windows, tmp_path / "eval", settings=run, device="cpu", progress=False)["probes"]
    block = probes["blocks"]["shuffled"]
    assert block["label"] == "chrom_shuffled" and block["recoverable"] is False
    assert block["probe"] == pytest.approx(probes["accuracy"]["shuffled"]["chrom_shuffled"])
    assert block["probe"] <= probes["chance"]["chrom_shuffled"] + 0.05
    # It did memorise: on its own training windows the head, and a probe scored there, beat chance by far.
    model, meta = load_model(path, "cpu")
    rows, seq, tracks = _train_windows(windows, labels)
    y = labels["chrom_shuffled"].to_numpy()[rows]
    with torch.inference_mode():
        z = model.eval().encode(seq, tracks)[:, model.layout.slice("shuffled")]
        head = model.supervised_heads["shuffled"](z).argmax(1).numpy()
    cats = meta["data"]["label_categories"]["chrom_shuffled"]
    train_chance = pd.Series(y).value_counts(normalize=True).max()
    assert np.mean(np.asarray(cats)[head] == y) > train_chance + 0.2
    assert linear_probe(z.numpy(), y, z.numpy(), y).accuracy > train_chance + 0.2


def test_swap_success_reported(evaluated: dict[str, Any]) -> None:
    swap = evaluated["metrics"]["plain"]["swap"]
    chrom = swap["chrom"]
    assert chrom["judge_learns"] is True and chrom["computed"] is True and chrom["skipped"] is None
    assert chrom["judge_heldout_accuracy"] > chrom["judge_chance"]
    assert chrom["n"] > 0.5 * N_WINDOWS["test"]  # donors are drawn with a different chromosome
    total = chrom["donor_fraction"] + chrom["recipient_fraction"] + chrom["other_fraction"]
    assert total == pytest.approx(1.0)
    assert 0.0 <= chrom["reconstruction_kept_fraction"] <= 1.0
    assert chrom["decoding"] == "sample"
    assert 0.0 <= chrom["donor_base_agreement"] <= 1.0 and 0.0 <= chrom["recipient_base_agreement"] <= 1.0
    mixture = chrom["real_mixture_donor_fraction"]
    assert set(mixture) == {f"{k:g}" for k in MIXTURE_KEPT_SHARES} | {"at_kept"}
    assert all(0.0 <= v <= 1.0 for v in mixture.values())
    gene = swap["gene"]
    assert gene["label"] == "gene_family"
    assert gene["computed"] or "cannot read" in gene["skipped"]


class _GCJudge:
    """A judge that calls a window "gc" when over half of its bases are C or G, else "at"."""

    def predict(self, codes: np.ndarray) -> np.ndarray:
        gc = np.isin(codes, (1, 2)).mean(axis=1)
        return np.where(gc > 0.5, "gc", "at")


def test_real_mixture_frontier_moves_from_recipient_to_donor() -> None:
    from seqae.evaluation.swaps import _real_mixture_frontier

    rng = np.random.default_rng(0)
    n, length = 200, 400
    labels = np.array(["gc", "at"] * (n // 2))
    # GC windows are all C/G, AT windows all A/T: the judge is exact on real windows.
    seq = np.where(labels[:, None] == "gc", rng.choice([1, 2], (n, length)), rng.choice([0, 3], (n, length)))
    donors = (np.arange(n) + 1) % n  # every donor has the other label
    out = _real_mixture_frontier(_GCJudge(), seq.astype(np.uint8), donors, labels, 0.0, np.random.default_rng(1))
    assert out["at_kept"] == 1.0  # nothing kept: the donor's real window, judged the donor's
    assert out["0.98"] == 0.0 and out["0.9"] == 0.0  # mostly the recipient: judged the recipient's
    assert out["0.5"] == pytest.approx(0.5, abs=0.15)  # half and half: a coin flip at the threshold
    shares = [out[f"{k:g}"] for k in MIXTURE_KEPT_SHARES]
    assert shares == sorted(shares, reverse=True)  # keeping more of the recipient never moves it further
    same = _real_mixture_frontier(_GCJudge(), seq.astype(np.uint8), np.arange(n), labels, 0.5, rng)
    assert same == {}  # no pair with different labels: nothing to score


@pytest.mark.parametrize("decoder_reads", ["all but chrom", "only chrom"])
def test_swap_base_agreement_on_hand_made_decoders(
    evaluated: dict[str, Any], tmp_path: Path, decoder_reads: str
) -> None:
    """The trained plain model with its decoder's input weights zeroed for some blocks: a decoder blind
    to the chrom block rebuilds every recipient exactly whatever the swap; one that reads only the chrom
    block rebuilds the donor."""
    state = load_checkpoint(evaluated["model"]["plain"])
    model = build_model(state)
    chrom = model.layout.slice("chrom")
    weight = state["model_state"]["decoder.from_latent.weight"].clone()  # [C * L0, D]
    if decoder_reads == "all but chrom":
        weight[:, chrom] = 0.0
    else:
        keep = weight[:, chrom].clone()
        weight.zero_()
        weight[:, chrom] = keep
    state["model_state"]["decoder.from_latent.weight"] = weight
    path = save_checkpoint(state, tmp_path / "best.pt")
    settings = {**FAST, "labels": ["chrom"], "figures": False}
    metrics = evaluate_model(
        path, evaluated["windows"], tmp_path / "eval", settings=settings, device="cpu", progress=False
    )
    swap = metrics["swap"]["chrom"]
    if decoder_reads == "all but chrom":
        assert swap["recipient_base_agreement"] == 1.0 and swap["donor_base_agreement"] < 1.0
    else:
        assert swap["donor_base_agreement"] == 1.0 and swap["recipient_base_agreement"] < 1.0


def test_figures_are_non_blank_pngs(evaluated: dict[str, Any]) -> None:
    from matplotlib.image import imread

    outdir = evaluated["outdir"]["plain"]
    names = [
        "probe_matrix.png",
        "latent/latent_chrom.png",
        "latent/latent_gene.png",
        "latent/latent_residual.png",
        "anomaly_scores.png",
        "loss_curves.png",
    ]
    assert sorted(evaluated["metrics"]["plain"]["figures"].values()) == sorted(names)
    for name in names:
        _assert_png(outdir / name, imread)
    assert evaluated["metrics"]["vq"]["figures"] == {}  # figures: false


def _assert_png(path: Path, imread: Any) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 5000, path
    image = imread(path)
    assert (image != image[:1, :1]).any(), f"{path}: every pixel has the same value"


# ---------------------------------------------------------------- compare


def _hand_metrics(
    name: str, kind: str, recon: float, chrom_probe: float, swap_donor: float | None, extra: dict
) -> dict:
    return {
        "model": {
            "name": name,
            "kind": kind,
            "blocks": {
                "chrom": {"size": 4, "label": "chrom"},
                "gene": {"size": 4, "label": "gene_family"},
                "residual": {"size": 8, "label": None},
            },
        },
        "data": {"n_test": 100},
        "reconstruction": {"base_accuracy": recon, "pca_base_accuracy": 0.4},
        "probes": {
            "accuracy": {"residual": {"chrom": 0.3, "gene_family": 0.2}},
            "blocks": {
                "chrom": {
                    "label": "chrom",
                    "probe": chrom_probe,
                    "kmer_baseline": 0.7,
                    "chance": 0.25,
                    "recoverable": True,
                    "residual": {"residual": 0.3},
                },
                "gene": {
                    "label": "gene_family",
                    "probe": 0.35,
                    "kmer_baseline": 0.2,
                    "chance": 0.2,
                    "recoverable": False,
                    "residual": {"residual": 0.2},
                },
            },
        },
        "swap": {
            "chrom": {
                "computed": swap_donor is not None,
                "donor_fraction": swap_donor,
                "recipient_fraction": 0.1 if swap_donor is not None else None,
                "recipient_base_agreement": 0.8 if swap_donor is not None else None,
                "donor_base_agreement": 0.35 if swap_donor is not None else None,
            },
            "gene": {"computed": False, "skipped": "judge cannot read"},
        },
        "disentanglement": {"mig": {"latent": 0.1}, "dci": {"latent": {"disentanglement": 0.5}}},
        "anomaly": {
            "auroc_shuffled": 0.8,
            "auroc_foreign": 0.95,
            "seq_gain_over_composition": {"real": 0.06, "shuffled": 0.05, "foreign": 0.01},
        },
        "vae": None,
        "vq": None,
        **extra,
    }


def test_compare_models_on_hand_made_metrics(tmp_path: Path) -> None:
    a = _hand_metrics("plain", "plain", 0.6, 0.9, 0.7, {})
    b = _hand_metrics(
        "vq",
        "vq",
        0.5,
        0.8,
        None,
        {
            "vq": {
                "perplexity": {"chrom": 4.0, "gene": 6.0, "residual": 8.0},
                "usage": {"chrom": 0.5, "gene": 1.0, "residual": 0.75},
            }
        },
    )
    paths = []
    for name, data in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        paths.append(tmp_path / name / "metrics.json")
        paths[-1].write_text(json.dumps(data))
    out = tmp_path / "comparison.tsv"
    assert main(["-q", "compare", "--metrics", *map(str, paths), "--out", str(out)]) == 0
    table = pd.read_csv(out, sep="\t")
    assert table["model"].tolist() == ["plain", "vq"] and table["kind"].tolist() == ["plain", "vq"]
    assert table["recon_accuracy"].tolist() == [0.6, 0.5]
    assert table["pca_recon_accuracy"].tolist() == [0.4, 0.4]
    assert table["chrom_probe"].tolist() == [0.9, 0.8]
    assert table["chrom_kmer"].tolist() == [0.7, 0.7]
    assert table["chrom_residual"].tolist() == [0.3, 0.3]
    assert table["chrom_chance"].tolist() == [0.25, 0.25]
    assert table["gene_recoverable"].tolist() == [False, False]
    assert table["swap_chrom_donor"].iloc[0] == 0.7 and np.isnan(table["swap_chrom_donor"].iloc[1])
    assert table["swap_chrom_kept"].iloc[0] == 0.8 and np.isnan(table["swap_chrom_kept"].iloc[1])
    assert table["swap_chrom_moved"].iloc[0] == 0.35 and np.isnan(table["swap_chrom_moved"].iloc[1])
    assert table["swap_gene_donor"].isna().all()
    assert table["auroc_shuffled"].tolist() == [0.8, 0.8] and table["auroc_foreign"].tolist() == [0.95, 0.95]
    assert table["seq_gain_real"].tolist() == [0.06, 0.06] and table["seq_gain_shuffled"].tolist() == [0.05, 0.05]
    assert np.isnan(table["vq_perplexity"].iloc[0]) and table["vq_perplexity"].iloc[1] == pytest.approx(6.0)
    assert table["vq_usage"].iloc[1] == pytest.approx(0.75)
    md = out.with_suffix(".md").read_text().splitlines()
    assert md[0].startswith("| model | kind |") and len(md) == 4
    assert "| plain | plain |" in md[2] and "0.900" in md[2]
    from matplotlib.image import imread

    _assert_png(out.with_suffix(".png"), imread)


def test_compare_on_real_evaluations(evaluated: dict[str, Any], tmp_path: Path) -> None:
    paths = [evaluated["outdir"][k] / "metrics.json" for k in ("plain", "vq", "vae", "plain")]
    table = compare_models(paths, tmp_path / "c.tsv", tmp_path / "c.png")
    assert table["kind"].tolist() == ["plain", "vq", "vae", "plain"]
    # The same model twice: told apart by the metrics file's folder.
    assert table["model"].tolist() == ["tiny_plain (eval_plain)", "tiny_vq", "tiny_vae", "tiny_plain (eval_plain)"]
    assert table["chrom_probe"].between(0, 1).all()
    assert not np.isnan(table["vq_perplexity"].iloc[1]) and np.isnan(table["vq_perplexity"].iloc[0])
    assert "vae_spectrum_k4" in table.columns and not np.isnan(table["vae_spectrum_k4"].iloc[2])


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


def test_foreign_control_carries_real_tracks(monkeypatch) -> None:
    """Foreign windows get other test windows' tracks, not zeros (which reconstruct almost perfectly
    and would make foreign windows look more normal than real ones)."""
    from types import SimpleNamespace

    from seqae.evaluation import anomaly

    seen: list[np.ndarray] = []

    def fake_scores(model, seq, tracks, batch_size, device):
        seen.append(tracks)
        return np.zeros(len(seq), np.float32), np.zeros(len(seq), np.float32), None

    monkeypatch.setattr(anomaly, "score_windows", fake_scores)
    monkeypatch.setattr(anomaly, "pca_apply", lambda pca, codes: (None, np.zeros(len(codes), np.float32)))
    rng = np.random.default_rng(0)
    n, t, length = 12, 2, 30
    data = SimpleNamespace(
        test_seq=rng.integers(0, 4, (n, length)).astype(np.uint8),
        train_seq=rng.integers(0, 4, (n, length)).astype(np.uint8),
        test_tracks=rng.random((n, t, length)).astype(np.float16),
        test_kind=None,
    )
    test_out = {"score": np.ones(n, np.float32), "seq_score": np.ones(n, np.float32)}
    cfg = {"seed": 0, "batch_size": 4, "markov_order": 2}
    anomaly.evaluate_anomaly(None, data, test_out, {"pca": None, "test_err": np.ones(n)}, cfg, torch.device("cpu"))
    shuffled_tracks, foreign_tracks = seen
    assert shuffled_tracks is data.test_tracks
    assert foreign_tracks.shape == data.test_tracks.shape and foreign_tracks.any()

    # A permutation of the real windows' tracks: the same rows, in another order.
    def as_rows(a: np.ndarray) -> list[bytes]:
        return sorted(map(bytes, a.reshape(n, -1)))

    assert as_rows(foreign_tracks) == as_rows(data.test_tracks)
    assert not np.array_equal(foreign_tracks, data.test_tracks)
