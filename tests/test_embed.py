"""Embedding stage: Parquet of latents and scores, reconstructed-track and anomaly bigWigs, checks, atomicity."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pyBigWig
import pytest
import torch

from seqae import __version__, embed, runtime
from seqae.checkpoint import FORMAT_VERSION, MODEL_FORMAT, save_checkpoint
from seqae.cli import main
from seqae.embed import embed_windows, latent_column_names
from seqae.embed_placement import place_windows
from seqae.embed_shards import embed_shard, gather_embedding, shard_path
from seqae.errors import SeqaeError
from seqae.extract import extract_windows
from seqae.models import SequenceAutoencoder
from seqae.tracks import invert_transform
from seqae.windows.reader import read_windows
from seqae.windows.store import WindowsWriter, read_labels, read_schema
from tests.conftest import tiny_model

TINY_SETTINGS = tiny_model(
    blocks={
        "chrom": {"size": 4, "label": "chrom"},
        "gene": {"size": 4, "label": "gene_family"},
        "residual": {"size": 4, "label": None},
    }
)

# Tiny models: one torch thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(autouse=True)
def fp32_by_default(monkeypatch):
    """``precision: auto`` is bf16 on a CPU with bf16 instructions and fp32 elsewhere; these tests compare
    with full-precision references, so auto is fp32 here on every machine (bf16 is tested by name)."""
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)


def save_model(path: Path, windows: Path, window_len: int | None = None, track_names=None, seed: int = 0) -> Path:
    """A tiny untrained model in the ``best.pt`` layout, fitted to ``windows`` unless told otherwise."""
    schema = read_schema(windows)
    labels = read_labels(windows)
    torch.manual_seed(seed)
    model = SequenceAutoencoder(
        TINY_SETTINGS,
        n_tracks=len(schema.track_names),
        window_len=window_len or schema.window_len,
        label_classes={"chrom": labels["chrom"].nunique(), "gene_family": 3},
        track_transform=schema.track_transform,
    )
    # A few BatchNorm statistics away from their init, so eval mode is not the identity.
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    data_schema = schema.to_dict()
    if window_len is not None:
        data_schema["window_len"] = window_len
    if track_names is not None:
        data_schema["track_names"] = list(track_names)
    state = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "seqae_version": __version__,
        "model_name": "tiny",
        "model_init": model.init_kwargs,
        "model_state": model.state_dict(),
        "training": {},
        "seed": seed,
        "data": {"schema": data_schema, "label_categories": {}},
        "epoch": 0,
        "step": 0,
        "val_loss": 1.0,
    }
    save_checkpoint(state, path)
    return path


@pytest.fixture
def inputs(tiny_inputs):
    windows = tiny_inputs["dir"] / "windows.h5"
    extract_windows(tiny_inputs["config"], windows, progress=False)
    model = save_model(tiny_inputs["dir"] / "best.pt", windows)
    return {"windows": windows, "model": model, "dir": tiny_inputs["dir"]}


@pytest.fixture
def embedded(inputs):
    result = embed_windows(inputs["model"], inputs["windows"], inputs["dir"] / "emb", batch_size=4, progress=False)
    return {**inputs, "result": result, "out": inputs["dir"] / "emb"}


def reference_outputs(model_path: Path, windows: Path):
    """Latent, score, accuracy and bigWig-scale tracks computed here, window by window of the file."""
    model = SequenceAutoencoder(**torch.load(model_path, weights_only=True)["model_init"])
    model.load_state_dict(torch.load(model_path, weights_only=True)["model_state"])
    model.eval()
    schema = read_schema(windows)
    seq, tracks = read_windows(windows)
    crop = slice(schema.flank, schema.flank + schema.window_len)
    s = torch.from_numpy(seq[:, crop].astype(np.int64))
    t = torch.from_numpy(tracks[:, :, crop].astype(np.float32))
    with torch.inference_mode():
        latent = model.encode(s, t)
        score = model.anomaly_score(s, t)
        logits, tracks_pred = model.decode(latent)
        stored = model.tracks_to_stored(tracks_pred).numpy()
    called = s < 4
    accuracy = ((logits.argmax(1) == s) & called).sum(1) / called.sum(1)
    return {
        "model": model,
        "latent": latent.numpy(),
        "score": score.numpy(),
        "accuracy": accuracy.numpy(),
        "tracks": invert_transform(stored, schema.track_transform),
    }


def test_parquet_has_labels_latents_and_scores(embedded):
    result, windows = embedded["result"], embedded["windows"]
    table = pd.read_parquet(result.paths["embeddings"])
    labels = read_labels(windows)
    ref = reference_outputs(embedded["model"], windows)
    assert len(table) == len(labels) > 10
    pd.testing.assert_frame_equal(table[list(labels.columns)], labels, check_dtype=False)
    latent_columns = latent_column_names(ref["model"].layout.sizes)
    assert latent_columns[:5] == ["z_chrom_00", "z_chrom_01", "z_chrom_02", "z_chrom_03", "z_gene_00"]
    assert not any(c.startswith("z_") for c in labels.columns)
    expected_columns = list(labels.columns) + latent_columns + ["anomaly_score", "anomaly_rank", "seq_recon_accuracy"]
    assert list(table.columns) == expected_columns
    assert all(table[c].dtype == np.float32 for c in latent_columns)
    np.testing.assert_allclose(table[latent_columns].to_numpy(), ref["latent"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(table["anomaly_score"], ref["score"], rtol=1e-5)
    np.testing.assert_allclose(table["seq_recon_accuracy"], ref["accuracy"], rtol=1e-6)
    # Rank: a permutation of 1..N, 1 for the highest score.
    rank = table["anomaly_rank"].to_numpy()
    assert sorted(rank) == list(range(1, len(table) + 1))
    assert np.all(np.diff(table["anomaly_score"].to_numpy()[np.argsort(rank)]) <= 0)

    summary = json.loads(result.paths["summary"].read_text())
    assert summary["n_windows"] == len(labels)
    assert summary["device"] == "cpu" and summary["windows_per_second"] > 0
    assert summary == result.summary
    metadata = json.loads(pq.read_schema(result.paths["embeddings"]).metadata[b"seqae"])
    assert metadata["latent_blocks"] == {"chrom": [0, 4], "gene": [4, 8], "residual": [8, 12]}


def test_bigwigs_hold_reconstruction_and_scores(embedded):
    result, windows = embedded["result"], embedded["windows"]
    schema = read_schema(windows)
    labels = read_labels(windows)
    ref = reference_outputs(embedded["model"], windows)
    sizes = (labels.groupby("chrom", sort=False)["end"].max() + schema.flank).to_dict()
    placement = place_windows(labels, np.arange(len(labels)), schema.window_len, schema.flank)
    alone = np.flatnonzero(
        (placement.own_start == labels["start"].to_numpy()) & (placement.own_end == labels["end"].to_numpy())
    )
    assert len(alone) > 5
    anomaly = pyBigWig.open(str(result.paths["anomaly"]))
    assert anomaly.chroms() == sizes
    for t, name in enumerate(schema.track_names):
        bw = pyBigWig.open(str(result.paths[f"recon_{name}"]))
        assert bw.chroms() == sizes
        for i in alone:
            chrom, start, end = labels.loc[i, ["chrom", "start", "end"]]
            got = np.array(bw.values(chrom, int(start), int(end)))
            np.testing.assert_allclose(got, ref["tracks"][i, t], rtol=1e-4, atol=1e-5)
        bw.close()
    for i in range(len(labels)):
        lo, hi = int(placement.own_start[i]), int(placement.own_end[i])
        if hi > lo:
            got = np.array(anomaly.values(labels.loc[i, "chrom"], lo, hi))
            np.testing.assert_allclose(got, ref["score"][i], rtol=1e-5)
    # Bases outside every window have no data.
    first = labels.iloc[0]
    assert np.isnan(anomaly.values(first["chrom"], int(first["start"]) - 1, int(first["start"]))[0])


def test_anomalous_window_scores_higher(inputs):
    odd = inputs["dir"] / "odd.h5"
    shutil.copy(inputs["windows"], odd)
    target = 3
    with h5py.File(odd, "r+") as f:
        # Signal far above anything in the file, over the whole stored window.
        f["tracks"][target] = np.full(f["tracks"].shape[1:], 8.0, dtype=f["tracks"].dtype)
        f["seq"][target] = 0  # and poly-A
    normal = embed_windows(inputs["model"], inputs["windows"], inputs["dir"] / "a", progress=False)
    changed = embed_windows(inputs["model"], odd, inputs["dir"] / "b", progress=False)
    before = pd.read_parquet(normal.paths["embeddings"])
    after = pd.read_parquet(changed.paths["embeddings"])
    assert after.loc[target, "anomaly_score"] > 5 * before.loc[target, "anomaly_score"]
    assert after.loc[target, "anomaly_rank"] == 1
    others = np.arange(len(after)) != target
    np.testing.assert_allclose(after.loc[others, "anomaly_score"], before.loc[others, "anomaly_score"], rtol=1e-5)


def test_splits_keep_file_order(inputs):
    labels = read_labels(inputs["windows"])
    result = embed_windows(
        inputs["model"], inputs["windows"], inputs["dir"] / "train", splits=["train"], progress=False
    )
    table = pd.read_parquet(result.paths["embeddings"])
    assert table["window_id"].tolist() == labels.loc[labels["split"] == "train", "window_id"].tolist()
    assert sorted(table["anomaly_rank"]) == list(range(1, len(table) + 1))
    with pytest.raises(SeqaeError, match="no split 'holdout'"):
        embed_windows(inputs["model"], inputs["windows"], inputs["dir"] / "x", splits="holdout", progress=False)


def test_model_must_fit_the_windows(inputs):
    other_len = save_model(inputs["dir"] / "len.pt", inputs["windows"], window_len=160)
    with pytest.raises(SeqaeError, match="window_len is 200 here, 160 for the model") as info:
        embed_windows(other_len, inputs["windows"], inputs["dir"] / "x", progress=False)
    assert "\n" not in str(info.value)
    other_tracks = save_model(inputs["dir"] / "tracks.pt", inputs["windows"], track_names=["TFA", "TFC"])
    with pytest.raises(SeqaeError, match=r"tracks are \['TFA', 'TFB'\] here, \['TFA', 'TFC'\] for the model"):
        embed_windows(other_tracks, inputs["windows"], inputs["dir"] / "x", progress=False)
    assert not (inputs["dir"] / "x").exists() or not any((inputs["dir"] / "x").iterdir())


def test_failure_leaves_no_partial_outputs(inputs, monkeypatch):
    out = inputs["dir"] / "emb"
    embed_windows(inputs["model"], inputs["windows"], out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = {"n": 0}
    decode = SequenceAutoencoder.decode

    def failing_decode(self, latent):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("device lost")
        return decode(self, latent)

    monkeypatch.setattr(SequenceAutoencoder, "decode", failing_decode)
    monkeypatch.setattr(embed, "_BLOCK_ROWS", 4)  # several blocks: outputs were being written when it failed
    with pytest.raises(RuntimeError, match="device lost"):
        embed_windows(inputs["model"], inputs["windows"], out, batch_size=2, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_run_killed_between_renames_leaves_no_earlier_outputs_beside_its_own(inputs, monkeypatch):
    """The outputs are renamed one at a time: killed between two renames over an earlier embedding, the
    folder mixed both runs' files (another model's h5ad and summary beside the new Parquet) with nothing to
    tell. A killed run's hidden temporaries stayed too."""
    import seqae.fileio

    out = inputs["dir"] / "emb"
    embed_windows(inputs["model"], inputs["windows"], out, progress=False)
    earlier = {p.name for p in out.iterdir()}
    assert {"embeddings.h5ad", "embed_summary.json"} <= earlier and any(n.startswith("recon_") for n in earlier)
    (out / ".anomaly.bw.x1y2.tmp").write_bytes(b"half a bigWig of a killed run")
    replace, calls = os.replace, []

    def killed_after_one_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill between the renames
        return replace(src, dst)

    monkeypatch.setattr(seqae.fileio.os, "replace", killed_after_one_rename)
    with pytest.raises(KeyboardInterrupt):
        embed_windows(inputs["model"], inputs["windows"], out, progress=False, recon_tracks=False)
    left = sorted(p.name for p in out.iterdir())
    assert left == [Path(calls[0]).name], left  # the one renamed output: nothing of the earlier run, no temporaries
    monkeypatch.setattr(seqae.fileio.os, "replace", replace)
    embed_windows(inputs["model"], inputs["windows"], out, progress=False, recon_tracks=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "anomaly.bw", "embed_summary.json", "embeddings.h5ad", "embeddings.parquet"
    ]  # fmt: skip


def test_process_writers_and_unsorted_file_give_the_same_tracks(inputs, monkeypatch):
    schema = read_schema(inputs["windows"])
    labels = read_labels(inputs["windows"])
    seq, tracks = read_windows(inputs["windows"])
    # The same windows in another order: the bigWigs need a second pass in genome order.
    perm = np.random.default_rng(0).permutation(len(labels))
    shuffled = inputs["dir"] / "shuffled.h5"
    with WindowsWriter(shuffled, schema, track_dtype="float16") as writer:
        writer.append(seq[perm], tracks[perm])
        writer.write_labels(labels.iloc[perm].reset_index(drop=True))
    plain = embed_windows(inputs["model"], inputs["windows"], inputs["dir"] / "a", progress=False)
    monkeypatch.setattr(embed, "_PROCESS_WRITERS_MIN_WINDOWS", 1)
    monkeypatch.setattr(embed, "_BLOCK_ROWS", 8)
    other = embed_windows(inputs["model"], shuffled, inputs["dir"] / "b", batch_size=8, progress=False)
    table = pd.read_parquet(other.paths["embeddings"])
    assert table["window_id"].tolist() == labels["window_id"].iloc[perm].tolist()
    for key in ["anomaly", *(f"recon_{name}" for name in schema.track_names)]:
        a, b = pyBigWig.open(str(plain.paths[key])), pyBigWig.open(str(other.paths[key]))
        assert a.chroms() == b.chroms()
        for chrom in a.chroms():
            ia, ib = a.intervals(chrom), b.intervals(chrom)
            assert [x[:2] for x in ia] == [x[:2] for x in ib]
            np.testing.assert_allclose([x[2] for x in ia], [x[2] for x in ib], rtol=1e-4, atol=1e-5)


def _bigwig_entries(path: Path) -> dict[str, list[tuple]]:
    bw = pyBigWig.open(str(path))
    try:
        return {chrom: list(bw.intervals(chrom) or []) for chrom in bw.chroms()}
    finally:
        bw.close()


@pytest.mark.parametrize("windows_key", ["sorted", "unsorted"])
def test_sharded_embedding_gives_the_same_outputs(inputs, monkeypatch, windows_key):
    windows = inputs["windows"]
    if windows_key == "unsorted":  # a hand-made file not in genome order: shards are cut in genome order
        schema, labels = read_schema(windows), read_labels(windows)
        seq, tracks = read_windows(windows)
        perm = np.random.default_rng(0).permutation(len(labels))
        windows = inputs["dir"] / "shuffled.h5"
        with WindowsWriter(windows, schema, track_dtype="float16") as writer:
            writer.append(seq[perm], tracks[perm])
            writer.write_labels(labels.iloc[perm].reset_index(drop=True))
    monkeypatch.setattr(embed, "_BLOCK_ROWS", 2)  # several blocks per shard, shards of unequal size
    whole = embed_windows(inputs["model"], windows, inputs["dir"] / "whole", batch_size=1, progress=False)
    n = whole.summary["n_windows"]
    shards = 3
    assert n > 2 * 2 * shards
    out = inputs["dir"] / "sharded"
    for k in reversed(range(shards)):  # any order: each shard is its own job
        embed_shard(inputs["model"], windows, out, k, shards, batch_size=1, progress=False)
    sharded = gather_embedding(inputs["model"], windows, out, shards, batch_size=1)
    a, b = pd.read_parquet(whole.paths["embeddings"]), pd.read_parquet(sharded.paths["embeddings"])
    if windows_key == "sorted":  # the same batches: the same numbers
        pd.testing.assert_frame_equal(a, b)
    else:  # other batches (file order vs genome order): the same numbers within float tolerance
        pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-4, atol=1e-5)
    for key in ["anomaly", *(k for k in whole.paths if k.startswith("recon_"))]:
        ea, eb = _bigwig_entries(whole.paths[key]), _bigwig_entries(sharded.paths[key])
        assert ea.keys() == eb.keys()
        for chrom in ea:
            assert [x[:2] for x in ea[chrom]] == [x[:2] for x in eb[chrom]]
            np.testing.assert_allclose([x[2] for x in ea[chrom]], [x[2] for x in eb[chrom]], rtol=1e-4, atol=1e-5)


def test_bf16_embedding_is_near_fp32_and_shards_agree_with_one_job(inputs, monkeypatch, caplog):
    """--precision bf16: the same rows, latents and scores near fp32's, the precision in the summary; its shards
    give what one bf16 job gives, and shards of different precisions are refused."""
    monkeypatch.setattr(embed, "_BLOCK_ROWS", 2)
    model, windows, root = inputs["model"], inputs["windows"], inputs["dir"]
    full = embed_windows(model, windows, root / "fp32", batch_size=1, progress=False, precision="fp32")
    half = embed_windows(model, windows, root / "bf16", batch_size=1, progress=False, precision="bf16")
    assert (full.summary["precision"], half.summary["precision"]) == ("fp32", "bf16")
    a, b = pd.read_parquet(full.paths["embeddings"]), pd.read_parquet(half.paths["embeddings"])
    latents = [c for c in a.columns if c.startswith("z_")]
    assert not np.array_equal(a[latents].to_numpy(), b[latents].to_numpy())  # bf16 did run
    np.testing.assert_allclose(b[latents].to_numpy(), a[latents].to_numpy(), atol=0.05)
    np.testing.assert_allclose(b["anomaly_score"], a["anomaly_score"], rtol=0.01)
    pd.testing.assert_frame_equal(a.drop(columns=[*latents, "anomaly_score", "anomaly_rank", "seq_recon_accuracy"]),
                                  b.drop(columns=[*latents, "anomaly_score", "anomaly_rank", "seq_recon_accuracy"]))  # fmt: skip
    out = root / "sharded"
    for k in range(2):
        embed_shard(model, windows, out, k, 2, batch_size=1, progress=False, precision="bf16")
    sharded = gather_embedding(model, windows, out, 2, batch_size=1)
    assert sharded.summary["precision"] == "bf16"
    import json

    # The file says so too (it held the gathering process's own precision, fp32 here, and no shard count).
    written = json.loads(sharded.paths["summary"].read_text())
    assert (written["precision"], written["shards"]) == ("bf16", 2)
    pd.testing.assert_frame_equal(b, pd.read_parquet(sharded.paths["embeddings"]))
    embed_shard(model, windows, out, 1, 2, batch_size=1, progress=False, precision="fp32")
    with pytest.raises(SeqaeError, match=r"shards: the shards were embedded at different precisions \(bf16, fp32\)"):
        gather_embedding(model, windows, out, 2, batch_size=1)
    with caplog.at_level("WARNING", logger="seqae"):  # this module's CPUs have no bf16 instructions
        embed_windows(model, windows, root / "emulated", batch_size=1, progress=False, precision="bf16")
    assert "is emulated and slower than fp32" in caplog.text
    with pytest.raises(SeqaeError, match="precision must be one of auto, fp32, bf16, got 'half'"):
        embed_windows(model, windows, root / "bad", progress=False, precision="half")
    assert not (root / "bad" / "embeddings.parquet").exists()


def test_gather_names_a_missing_or_foreign_shard(inputs, monkeypatch):
    monkeypatch.setattr(embed, "_BLOCK_ROWS", 2)
    out = inputs["dir"] / "sharded"
    for k in range(2):
        embed_shard(inputs["model"], inputs["windows"], out, k, 2, batch_size=1, progress=False)
    with pytest.raises(SeqaeError, match=r"embed_shard_002.h5: shard 2 of 3 is missing"):
        gather_embedding(inputs["model"], inputs["windows"], out, 3, batch_size=1)
    with pytest.raises(SeqaeError, match=r"embed_shard_000.h5: not shard 0 of 3 of these windows \(shards is 2"):
        embed_shard(inputs["model"], inputs["windows"], out, 2, 3, batch_size=1, progress=False)
        gather_embedding(inputs["model"], inputs["windows"], out, 3, batch_size=1)
    assert not (out / "embeddings.parquet").exists()
    # Shards of other windows (here: the same windows with one label changed) or of another model are not gathered.
    import shutil

    import h5py

    other = inputs["dir"] / "other_windows.h5"
    shutil.copy(inputs["windows"], other)
    with h5py.File(other, "r+") as f:
        gc = f["labels"]["gc"][()]
        f["labels"]["gc"][0] = gc[0] + 0.01
    with pytest.raises(SeqaeError, match=r"embed_shard_000.h5: was embedded from another model or windows file"):
        gather_embedding(inputs["model"], other, out, 2, batch_size=1)
    # A shard file cut short: one line, not HDF5's.
    good = shard_path(out, 0).read_bytes()
    shard_path(out, 0).write_bytes(good[:1000])
    with pytest.raises(SeqaeError, match=r"embed_shard_000.h5: not a readable HDF5 file \(truncated\?\)"):
        gather_embedding(inputs["model"], inputs["windows"], out, 2, batch_size=1)
    shard_path(out, 0).write_bytes(good)
    # A shard that fails leaves no file behind (written under a temporary name, renamed when complete).
    monkeypatch.setattr(
        SequenceAutoencoder, "score_reconstruct", lambda *a: (_ for _ in ()).throw(RuntimeError("killed"))
    )
    shard_path(out, 1).unlink()
    left = out / "shards" / ".embed_shard_001.h5.0123456789ab.tmp"  # what a SIGKILLed run of shard 1 leaves
    left.write_bytes(b"x")
    with pytest.raises(RuntimeError, match="killed"):
        embed_shard(inputs["model"], inputs["windows"], out, 1, 2, batch_size=1, progress=False)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["embed_shard_000.h5", "embed_shard_002.h5"]


def test_cli(inputs, tmp_path, capsys):
    out = tmp_path / "cli"
    sizes = tmp_path / "genome.sizes"
    sizes.write_text("chr1\t6000\nchr2\t5000\nchr3\t3000\n")
    status = main(
        ["-q", "embed", "--model", str(inputs["model"]), "--windows", str(inputs["windows"]), "--outdir", str(out),
         "--batch-size", "8", "--device", "cpu", "--chrom-sizes", str(sizes)]
    )  # fmt: skip
    assert status == 0
    assert {p.name for p in out.iterdir()} == {
        "embeddings.parquet", "embeddings.h5ad", "anomaly.bw", "recon_TFA.bw", "recon_TFB.bw", "embed_summary.json"
    }  # fmt: skip
    assert pyBigWig.open(str(out / "anomaly.bw")).chroms() == {"chr1": 6000, "chr2": 5000, "chr3": 3000}
    bad = save_model(tmp_path / "bad.pt", inputs["windows"], window_len=160)
    status = main(["embed", "--model", str(bad), "--windows", str(inputs["windows"]), "--outdir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "window_len" in err[0]


def test_h5ad_holds_the_parquets_windows_scores_and_blocks(embedded):
    import anndata

    result = embedded["result"]
    table = pd.read_parquet(result.paths["embeddings"])
    adata = anndata.read_h5ad(result.paths["h5ad"])
    assert list(adata.obs_names) == list(table["window_id"])
    for column in ("chrom", "peak_set", "split", "anomaly_score", "anomaly_rank", "seq_recon_accuracy"):
        assert column in adata.obs, column
    np.testing.assert_array_equal(adata.obs["anomaly_rank"], table["anomaly_rank"])
    np.testing.assert_array_equal(adata.obs["peak_set"].astype(str), table["peak_set"].astype(str))
    blocks = json.loads(adata.uns["seqae"])["latent_blocks"]
    assert sorted(adata.obsm) == sorted(f"X_{name}" for name in blocks)
    for name, (start, stop) in blocks.items():
        np.testing.assert_array_equal(
            adata.obsm[f"X_{name}"],
            table.iloc[:, len(read_labels(embedded["windows"]).columns) + np.arange(start, stop)],
        )
    np.testing.assert_array_equal(adata.X, np.hstack([adata.obsm[f"X_{name}"] for name in blocks]))
    assert list(adata.var["block"].astype(str)) == [name for name, (a, b) in blocks.items() for _ in range(a, b)]


def test_h5ad_opens_in_scanpy_for_neighbors_umap_and_leiden(embedded):
    """The README's five lines, on a tiny embedding."""
    sc = pytest.importorskip("scanpy")
    adata = sc.read_h5ad(embedded["result"].paths["h5ad"])
    sc.pp.neighbors(adata, use_rep="X_residual", n_neighbors=5)
    sc.tl.umap(adata)
    assert adata.obsm["X_umap"].shape == (adata.n_obs, 2) and np.isfinite(adata.obsm["X_umap"]).all()
    if importlib.util.find_spec("igraph") is not None:
        sc.tl.leiden(adata, flavor="igraph", n_iterations=2)
        assert adata.obs["leiden"].nunique() >= 1
