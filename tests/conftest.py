"""Fixtures and helpers the test directories share (see tests/README.md).

Tiny genomes, peaks, bigWigs and annotations written inside the tests; the tiny
model settings; one torch thread for tiny models; the evaluation of a tiny model
of each kind (tests/evaluation/ and tests/test_compare.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyBigWig
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

#: The repository's root: the tests read its config/, workflow and scripts from here, wherever pytest runs.
REPO = Path(__file__).resolve().parents[1]


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """``n`` torch threads inside the block, the caller's number again after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny models (``pytest.mark.usefixtures``):
    they gain nothing from intra-op threads, and on a busy 2-core machine OpenMP
    threads contending with other processes make every op many times slower.
    Session-scoped fixtures that train are set up before it: they take
    :func:`torch_threads` themselves."""
    with torch_threads(1):
        yield


def write_fasta(path: Path, records: Mapping[str, str], line_width: int = 60) -> Path:
    """Write a FASTA with fixed-width lines."""
    with open(path, "w") as f:
        for name, seq in records.items():
            f.write(f">{name}\n")
            f.writelines(seq[i : i + line_width] + "\n" for i in range(0, len(seq), line_width))
    return path


def write_bigwig(path: Path, values: Mapping[str, np.ndarray], names: Mapping[str, str] | None = None) -> Path:
    """Write per-base values (one entry per base; NaN bases are left without data).

    ``names`` renames chromosomes in the file (e.g. ``{"chr1": "1"}``).
    """
    names = dict(names or {})
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([(names.get(c, c), len(v)) for c, v in values.items()])
    for chrom, vals in values.items():
        pos = np.flatnonzero(~np.isnan(vals))
        if pos.size:
            bw.addEntries(
                [names.get(chrom, chrom)] * pos.size,
                pos.tolist(),
                ends=(pos + 1).tolist(),
                values=vals[pos].astype(float).tolist(),
            )
    bw.close()
    return path


def random_dna(rng: np.random.Generator, n: int, gc: float = 0.45) -> str:
    p = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]
    return rng.choice(np.array(list("ACGT")), size=n, p=p).astype("U1").tobytes().decode("utf-32-le")


@pytest.fixture
def tiny_inputs(tmp_path: Path) -> dict[str, Any]:
    """A three-chromosome genome with an N run, two TFs' peaks and bigWigs, and a GTF.

    Returns a dict with the paths, the sequences, the track values and a
    ready config (window_len 200, max_jitter 20).
    """
    rng = np.random.default_rng(42)
    seqs = {"chr1": random_dna(rng, 6000, 0.40), "chr2": random_dna(rng, 5000, 0.50), "chr3": random_dna(rng, 3000)}
    # An N run on chr2 so that windows over it are dropped.
    seqs["chr2"] = seqs["chr2"][:3000] + "N" * 400 + seqs["chr2"][3400:]
    # Soft-masked (lower case) stretch: still read as ordinary bases.
    seqs["chr1"] = seqs["chr1"][:100] + seqs["chr1"][100:300].lower() + seqs["chr1"][300:]
    fasta = write_fasta(tmp_path / "genome.fa", seqs)

    tracks = {}
    for tf in ("TFA", "TFB"):
        values = {c: rng.gamma(0.8, 2.0, size=len(s)).astype(np.float32) for c, s in seqs.items()}
        values["chr1"][500:520] = np.nan  # a gap without data -> 0
        tracks[tf] = values
    bw_a = write_bigwig(tmp_path / "TFA.bw", tracks["TFA"])
    # TFB's file spells chromosomes without the chr prefix: names must be harmonised.
    bw_b = write_bigwig(tmp_path / "TFB.bw", tracks["TFB"], names={"chr1": "1", "chr2": "2", "chr3": "3"})

    # narrowPeak: summit = start + column 10. Includes a peak too close to a
    # chromosome end (dropped), one over the N run (dropped) and one on a
    # chromosome absent from the FASTA (counted, skipped).
    peaks_a = [
        ("chr1", 900, 1300, "a1", 800, 200),  # summit 1100
        ("chr1", 2900, 3300, "a2", 500, 150),  # summit 3050
        ("chr1", 30, 200, "a3", 300, 20),  # summit 50: window crosses the chromosome start
        ("chr2", 3000, 3400, "a4", 400, 200),  # summit 3200: over the N run
        ("chr2", 1000, 1400, "a5", 600, 100),  # summit 1100
        ("chr3", 1400, 1600, "a6", 700, 100),  # summit 1500
        ("chrUn", 10, 500, "a7", 100, 50),  # not in the FASTA
    ]
    peaks_b = [
        ("1", 1900, 2100, "b3", 300, 100),  # summit 2000: inside the body of G1
        ("1", 4000, 4400, "b1", 900, 200),  # summit 4200 ('1' -> chr1)
        ("2", 1050, 1250, "b2", 100, 60),  # summit 1110: 10 bp from a5
    ]
    np_a = tmp_path / "TFA.narrowPeak"
    np_a.write_text("".join(f"{c}\t{s}\t{e}\t{n}\t{sc}\t.\t5.0\t10.0\t8.0\t{o}\n" for c, s, e, n, sc, o in peaks_a))
    np_b = tmp_path / "TFB.narrowPeak"
    np_b.write_text("".join(f"{c}\t{s}\t{e}\t{n}\t{sc}\t.\t5.0\t10.0\t8.0\t{o}\n" for c, s, e, n, sc, o in peaks_b))

    # GTF: a + gene on chr1 (TSS 1000, 0-based) and a - gene on chr1 (TSS 3999), one on chr2.
    gtf = tmp_path / "genes.gtf"
    gtf.write_text(
        "#!genome-build tiny\n"
        'chr1\tt\tgene\t1001\t2500\t.\t+\t.\tgene_id "G1"; gene_name "ALPHA"; gene_biotype "protein_coding"; gene_family "F1";\n'
        'chr1\tt\tgene\t3200\t4000\t.\t-\t.\tgene_id "G2"; gene_name "BETA"; gene_biotype "lncRNA"; gene_family "F2";\n'
        'chr2\tt\tgene\t2001\t2600\t.\t+\t.\tgene_id "G3"; gene_name "GAMMA"; gene_biotype "protein_coding"; gene_family "F1";\n'
    )
    config = make_config(
        fasta=fasta,
        tfs=[("TFA", np_a, bw_a), ("TFB", np_b, bw_b)],
        annotation=gtf,
        extract={"window_len": 200, "max_jitter": 20, "background_ratio": 1.0, "chunk_windows": 16},
    )
    return {
        "dir": tmp_path,
        "fasta": fasta,
        "seqs": seqs,
        "tracks": tracks,
        "bigwigs": {"TFA": bw_a, "TFB": bw_b},
        "peaks": {"TFA": np_a, "TFB": np_b},
        "gtf": gtf,
        "config": config,
    }


def tiny_model(**overrides: Any) -> dict[str, Any]:
    """The tests' tiny sequence-autoencoder settings (16 channels, blocks of 4 / 4 / 8), with ``overrides``.

    Each override replaces its key whole (``vq={...}`` is the whole VQ entry).
    """
    settings: dict[str, Any] = {
        "channels": 16,
        "n_res_blocks": 1,
        "dilations": [1, 2],
        "head_hidden": 16,
        "blocks": {
            "chrom": {"size": 4, "label": "chrom"},
            "gene": {"size": 4, "label": "gene_family"},
            "residual": {"size": 8, "label": None},
        },
        "vq": {"codebook_size": 8, "n_groups": 2},
    }
    return {**settings, **overrides}


def make_config(
    fasta: Path,
    tfs: Sequence[tuple[str, Path, Path | None]],
    annotation: Path | None = None,
    blacklist: Path | None = None,
    extract: Mapping[str, Any] | None = None,
    **top: Any,
) -> dict[str, Any]:
    """A validated config for one genome."""
    from seqae.config import validate_config

    config: dict[str, Any] = {
        "genomes": [
            {
                "species": "tiny",
                "fasta": str(fasta),
                "annotation": str(annotation) if annotation else None,
                "blacklist": str(blacklist) if blacklist else None,
                "tfs": [{"name": n, "peaks": str(p), "bigwig": str(b) if b else None} for n, p, b in tfs],
            }
        ],
        "extract": dict(extract or {}),
        **top,
    }
    return validate_config(config)


def internal_state_joint(tree, codes: np.ndarray, model) -> tuple[np.ndarray, np.ndarray]:
    """Brute force for tiny trees: the joint probability of the data and each assignment of internal states.

    Args:
        tree: a :class:`seqae.phylo.schedule.UnrootedTree` with its branch lengths.
        codes: ``[n, L]`` alignment codes in the tree's leaf order (4 = missing).
        model: a :class:`seqae.phylo.simulate.SubstitutionModel`.

    Returns:
        ``(states [S, n-2], joint [L, S])``: every assignment ``S = 4^(n-2)``
        of bases to internal nodes ``n .. 2n-3``, and per site the sum over
        rate categories of P(data at the site, assignment).
    """
    import itertools

    from seqae.phylo.patterns import tip_partials

    n = tree.n_taxa
    probs = model.transition_matrices(tree.lengths)  # [E, C, 4, 4]
    parent = {int(u): n + s for s, pair in enumerate(tree.children) for u in pair}
    parent.update({int(u): 2 * n - 3 for u in tree.root_children})
    tips = tip_partials(codes)  # [n, L, 4]
    states = np.array(list(itertools.product(range(4), repeat=n - 2)), dtype=np.int64)
    n_cat = probs.shape[1]
    joint = np.zeros((codes.shape[1], len(states)))
    for c in range(n_cat):
        term = np.broadcast_to(model.freqs[states[:, -1]] / n_cat, joint.shape).copy()
        for u, v in parent.items():
            rows = probs[u, c][states[:, v - n]]  # [S, 4]: P(parent state -> .)
            term *= (tips[u] @ rows.T) if u < n else rows[np.arange(len(states)), states[:, u - n]][None, :]
        joint += term
    return states, joint


def windows_file_contents(path: Path) -> tuple[dict[str, np.ndarray], dict[str, list], dict[str, str]]:
    """Every dataset of a windows file, the chunks of ``seq`` and ``tracks`` as ``(filter mask, inflated bytes)``
    (the chunk grid's content, padding included), and the attributes but the creation time: what two runs that
    should write the same file are compared on. The chunks are compared inflated, not as deflated bytes: the full
    suite once saw one chunk deflate to other, valid, bytes from the same data."""
    import zlib

    import h5py

    with h5py.File(path, "r") as f:
        found: dict[str, h5py.Dataset] = {}
        f.visititems(lambda name, obj: found.__setitem__(name, obj) if isinstance(obj, h5py.Dataset) else None)
        data = {name: ds[()] for name, ds in found.items()}
        chunks = {
            name: [
                (mask, zlib.decompress(raw))
                for mask, raw in (
                    ds.id.read_direct_chunk((row,) + (0,) * (ds.ndim - 1)) for row in range(0, len(ds), ds.chunks[0])
                )
            ]
            for name, ds in found.items()
            if name in ("seq", "tracks")
        }
        attrs = {k: str(v) for k, v in f.attrs.items() if k != "created_utc"}
    return data, chunks, attrs


def run_extract_cli(config: Mapping[str, Any], out: Path, capsys: Any) -> tuple[int, list[str]]:
    """``seqae --quiet extract`` on ``config`` (written beside ``out``): the exit status and the stderr lines."""
    import yaml

    from seqae.cli import main

    path = out.parent / "c.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    code = main(["--quiet", "extract", "--config", str(path), "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def training_info(**changes: Any) -> dict[str, Any]:
    """A model.json's summary of a finished 2-epoch CPU run, with ``changes``."""
    base = {"epochs_completed": 2, "steps": 142, "device": "cpu", "training": {"epochs": 2},
            "finished": True, "stop_reason": "epochs", "best_epoch": 2}  # fmt: skip
    return base | changes


def assert_non_blank_png(path: Path, imread: Any) -> None:
    """``path`` is a PNG of some size whose pixels are not all the same."""
    assert path.is_file(), path
    assert path.stat().st_size > 5000, path
    image = imread(path)
    assert (image != image[:1, :1]).any(), f"{path}: every pixel has the same value"


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny windows file, one model of each kind (plain, VQ, VAE, two-level) and their evaluations
    (tests.evaluation.helpers.evaluate_tiny_models), made once for every test that reads them."""
    from tests.evaluation.helpers import evaluate_tiny_models

    with torch_threads(1):
        return evaluate_tiny_models(tmp_path_factory.mktemp("evaluate"))
