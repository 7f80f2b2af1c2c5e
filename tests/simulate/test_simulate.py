"""Tests of the embedded demo-data generator (seqae.simulate)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyBigWig
import pyfaidx
import pytest
import yaml

from seqae.errors import ConfigError, SeqaeError
from seqae.simulate import fill_defaults, simulate_demo
from seqae.simulate.motifs import score_sites, shipped_motifs

SMALL = {
    "seed": 3,
    "n_chromosomes": 3,
    "chromosome_length": 60000,
    "n_genes": 12,
    "n_gene_families": 3,
    "tfs": [
        {"name": "CTCF", "motif": "MA0139.2", "n_peaks": 40},
        {"name": "FOXA1", "motif": "MA0148.5", "n_peaks": 40},
    ],
}
TFS = [tf["name"] for tf in SMALL["tfs"]]
_LUT = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate(b"ACGT"):
    _LUT[_b] = _i


def codes(fasta: pyfaidx.Fasta, chrom: str) -> np.ndarray:
    """A chromosome of the written FASTA as uint8 codes (A=0 C=1 G=2 T=3 N=4)."""
    return _LUT[np.frombuffer(str(fasta[chrom][:]).encode(), dtype=np.uint8)]


def tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    out = tmp_path_factory.mktemp("demo")
    return out, simulate_demo(SMALL, out)


@pytest.fixture(scope="module")
def fasta(demo) -> pyfaidx.Fasta:
    return pyfaidx.Fasta(str(demo[1]["fasta"]))


def test_outputs_returned_and_present(demo):
    out, outputs = demo
    expected = {"fasta", "annotation", "blacklist", "truth_sites", "truth_peaks", "truth_chromosomes", "truth_genes"}
    expected |= {f"peaks/{tf}" for tf in TFS} | {f"tracks/{tf}" for tf in TFS}
    expected |= {f"families/fam_{i}{kind}" for i in range(4) for kind in ("", "_tree")}  # the default 4 families
    assert expected <= set(outputs)
    for path in outputs.values():
        assert path.is_file() and path.stat().st_size > 0 and path.is_relative_to(out)
    assert (out / "genome.fa.fai").is_file()
    assert not list(out.rglob(".*.tmp")), "temporary files left behind"


def test_fasta_layout(demo, fasta):
    out, _ = demo
    assert list(fasta.keys()) == ["chr1", "chr2", "chr3"]
    assert all(len(fasta[c]) == SMALL["chromosome_length"] for c in fasta.keys())
    lines = (out / "genome.fa").read_text().splitlines()
    body = [line for line in lines if not line.startswith(">")]
    assert {len(line) for line in body} == {60}  # 60000 is a multiple of 60
    assert set("".join(body)) <= set("ACGTN")
    chroms = tsv(out / "truth" / "chromosomes.tsv")
    for c in fasta.keys():
        s = codes(fasta, c)
        runs = np.flatnonzero(np.diff(np.concatenate([[0], (s == 4).astype(int), [0]])))
        lengths = runs[1::2] - runs[::2]
        assert 1 <= len(lengths) <= 2 and all(200 <= n <= 2000 for n in lengths)
        assert int(chroms.set_index("chrom").loc[c, "n_bp"]) == int((s == 4).sum())


def test_gc_per_chromosome(demo, fasta):
    chroms = tsv(demo[0] / "truth" / "chromosomes.tsv")
    observed = []
    for row in chroms.itertuples():
        s = codes(fasta, row.chrom)
        gc = np.isin(s[s < 4], (1, 2)).mean()
        assert gc == pytest.approx(row.gc_observed, abs=1e-4)
        assert abs(gc - row.gc_target) < 0.01
        observed.append(gc)
        # CpG depletion: CpG observed/expected clearly below 1.
        cg = np.mean((s[:-1] == 1) & (s[1:] == 2))
        assert cg / (np.mean(s == 1) * np.mean(s == 2)) < 0.5
        # Repeat families of its own covering about repeat_density.
        assert row.repeat_families.split(",")[0].startswith(f"{row.chrom}_rep")
        assert 2 <= len(row.repeat_families.split(",")) <= 3
        assert row.repeat_fraction == pytest.approx(0.02, abs=0.005)
    assert observed == sorted(observed)


def test_interspersed_repeats_are_shared_by_every_chromosome(demo, fasta):
    """SINE/LINE-like families cover ~interspersed_repeat_density of each chromosome, the same
    families on all of them; each copy is its family's consensus 3' end, diverged by the stated rate."""
    out, _ = demo
    density = fill_defaults({})["interspersed_repeat_density"]
    chroms = tsv(out / "truth" / "chromosomes.tsv").set_index("chrom")
    repeats = tsv(out / "truth" / "repeats.tsv")
    shared = repeats[repeats["family"].str.match(r"^(SINE|LINE)\d+$")]
    assert set(shared["chrom"]) == set(chroms.index)
    for chrom, rows in shared.groupby("chrom"):
        covered = int((rows["end"] - rows["start"]).sum())
        assert covered / SMALL["chromosome_length"] == pytest.approx(density, abs=0.02)
        assert chroms.loc[chrom, "interspersed_fraction"] == pytest.approx(
            covered / SMALL["chromosome_length"], abs=1e-4
        )
    by_family = shared.groupby("family")["chrom"].nunique()
    assert (by_family >= 2).sum() >= 3  # families span chromosomes
    # Two copies of a family on different chromosomes share their 3' ends: aligned on it, they
    # agree far more often than unrelated sequence (1/4 plus composition).
    fam = shared.groupby("family").filter(lambda g: g["chrom"].nunique() >= 2)
    fam = fam[fam["family"] == fam["family"].iloc[0]]

    def copy_codes(row) -> np.ndarray:
        c = codes(fasta, row.chrom)[row.start : row.end]
        return c if row.strand == "+" else (3 - c[::-1])

    a, b = (fam[fam["chrom"] == chrom].iloc[0] for chrom in fam["chrom"].unique()[:2])
    ca, cb = copy_codes(a), copy_codes(b)
    n = min(len(ca), len(cb))
    identity = float(np.mean(ca[-n:] == cb[-n:]))
    assert identity > 0.45, identity
    assert (1 - a.divergence) * (1 - b.divergence) > 0.5


def test_gtf_and_genes(demo, fasta):
    out, _ = demo
    genes = tsv(out / "truth" / "genes.tsv")
    assert len(genes) == SMALL["n_genes"]
    assert set(genes["family"]) == {"FAM1", "FAM2", "FAM3"}
    plus = genes["strand"] == "+"
    assert (genes.loc[plus, "tss"] == genes.loc[plus, "start"]).all()
    assert (genes.loc[~plus, "tss"] == genes.loc[~plus, "end"] - 1).all()
    assert ((genes["end"] - genes["start"]).between(2000, 40000)).all()
    for _, g in genes.groupby("chrom"):  # no overlapping genes
        g = g.sort_values("start")
        assert (g["start"].to_numpy()[1:] >= g["end"].to_numpy()[:-1]).all()

    rows = [line.split("\t") for line in (out / "genes.gtf").read_text().splitlines()]
    assert all(len(r) == 9 for r in rows)
    assert {r[2] for r in rows} == {"gene", "transcript", "exon"}
    gene_lines = {r[8].split('"')[1]: r for r in rows if r[2] == "gene"}
    assert set(gene_lines) == set(genes["gene_id"])
    for g in genes.itertuples():
        r = gene_lines[g.gene_id]
        assert (r[0], int(r[3]), int(r[4]), r[6]) == (g.chrom, g.start + 1, g.end, g.strand)
        assert f'gene_family "{g.family}";' in r[8] and f'gene_biotype "{g.biotype}";' in r[8]
        assert r[8].startswith(f'gene_id "{g.gene_id}"; gene_name "{g.family}_')
        exons = sorted((int(e[3]), int(e[4]), e[8]) for e in rows if e[2] == "exon" and f'"{g.gene_id}"' in e[8])
        assert 2 <= len(exons) <= 8
        assert exons[0][0] == g.start + 1 and exons[-1][1] == g.end
        assert all(a[1] < b[0] for a, b in zip(exons, exons[1:]))
        first = exons[0] if g.strand == "+" else exons[-1]
        assert "exon_number 1;" in first[2]  # exon 1 holds the TSS
    assert (genes["biotype"].isin(["protein_coding", "lncRNA"])).all()


def test_narrowpeaks(demo, fasta):
    out, _ = demo
    order = {c: i for i, c in enumerate(fasta.keys())}
    for tf in TFS:
        df = pd.read_csv(out / "peaks" / f"{tf}.narrowPeak", sep="\t", header=None)
        assert df.shape == (40, 10)
        start, end, summit = df[1], df[2], df[1] + df[9]
        assert ((start < summit) & (summit < end)).all()
        assert (end - start).between(200, 600).all()
        assert df[4].between(0, 1000).all() and (df[5] == ".").all()
        assert df[3].str.fullmatch(rf"{tf}_peak_\d+").all()
        key = df[0].map(order) * 10**9 + start
        assert key.is_monotonic_increasing
        for row in df.itertuples():  # no N near a peak
            assert "N" not in str(fasta[row._1][row._2 : row._3])


def test_blacklist(demo, fasta):
    rows = [line.split("\t") for line in (demo[0] / "blacklist.bed").read_text().splitlines()]
    assert 3 <= len(rows) <= 6
    for chrom, a, b in rows:
        assert chrom in fasta.keys() and 0 <= int(a) < int(b) <= len(fasta[chrom])


def test_planted_sites_match_pwm(demo, fasta):
    out, _ = demo
    sites = tsv(out / "truth" / "sites.tsv")
    peaks = tsv(out / "truth" / "peaks.tsv")
    motifs = shipped_motifs()
    rng = np.random.default_rng(0)
    for tf in TFS:
        s = sites[sites["tf"] == tf]
        pwm = motifs[s["motif_id"].iloc[0]]
        assert (s["end"] - s["start"] == pwm.width).all()
        at_sites, at_random = [], []
        for chrom, sub in s.groupby("chrom"):
            seq = codes(fasta, chrom)
            sc = score_sites(seq, sub["start"].to_numpy(), sub["strand"].to_numpy(), pwm)
            np.testing.assert_allclose(sc, sub["score"].to_numpy(), atol=1e-3)  # truth matches the FASTA
            at_sites.append(sc)
            pos = rng.integers(0, len(seq) - pwm.width, size=2000)
            r = score_sites(seq, pos, np.where(rng.random(2000) < 0.5, "+", "-"), pwm)
            at_random.append(r[np.isfinite(r)])
        assert np.mean(np.concatenate(at_sites)) > np.mean(np.concatenate(at_random)) + 10  # bits
        # Every site lies within +-50 bp (plus the motif) of its peak's summit.
        p = peaks[peaks["tf"] == tf].set_index("name")
        centre = (s["start"] + s["end"]) // 2
        assert (np.abs(centre.to_numpy() - p.loc[s["peak_name"], "summit"].to_numpy()) <= 50 + pwm.width).all()
        counts = s["peak_name"].value_counts().reindex(p.index, fill_value=0)
        assert (counts == p["n_sites"]).all() and (p["has_motif"] == (counts > 0)).all()
        assert counts.between(0, 3).all() and p["weak"].sum() == 4 and not p.loc[p["weak"], "has_motif"].any()


def test_peak_kinds(demo):
    peaks = tsv(demo[0] / "truth" / "peaks.tsv")
    assert set(peaks["kind"]) >= {"distal", "promoter"}
    prom = peaks[peaks["kind"] == "promoter"]
    assert (prom["tss_distance"] <= 1000).all() and (prom["promoter_family"] != "").all()
    assert (peaks.loc[peaks["kind"] == "distal", "tss_distance"] >= 2000).all()
    # The second TF shares some peaks with the first (co-binding).
    cob = peaks[(peaks["tf"] == "FOXA1") & (peaks["kind"] == "cobound")]
    assert len(cob) > 0 and (cob["cobound_with"] == "CTCF").all()


def test_promoter_grammar(demo, fasta):
    out, _ = demo
    genes = tsv(out / "truth" / "genes.tsv").set_index("gene_id")
    ps = tsv(out / "truth" / "promoter_sites.tsv")
    assert set(ps["gene_id"]) == set(genes.index)
    g = genes.loc[ps["gene_id"]].reset_index()
    assert (ps["family"] == g["family"]).all()
    upstream = np.where(g["strand"] == "+", g["tss"] - ps["start"], ps["end"] - 1 - g["tss"])
    assert ((upstream > 0) & (upstream <= 500)).all()
    assert (ps["strand"] == g["strand"]).all()
    assert ps["score"].mean() > 5  # sampled from the family PWM: mostly near its consensus


def test_bigwig_signal(demo, fasta):
    out, _ = demo
    peaks = tsv(out / "truth" / "peaks.tsv")
    for tf in TFS:
        bw = pyBigWig.open(str(out / "tracks" / f"{tf}.bw"))
        try:
            assert bw.chroms() == {c: len(fasta[c]) for c in fasta.keys()}
            p = peaks[(peaks["tf"] == tf) & ~peaks["weak"]]
            at = np.array([bw.values(r.chrom, r.summit, r.summit + 1)[0] for r in p.itertuples()])
            far = []
            for r in p.itertuples():  # 3 kb away, on the side without another peak of this TF
                x = r.summit + 3000 if r.summit + 3500 < len(fasta[r.chrom]) else r.summit - 3000
                if (np.abs(p.loc[p["chrom"] == r.chrom, "summit"] - x) > 1500).all():
                    far.append(bw.values(r.chrom, x, x + 1)[0])
            assert not np.isnan(at).any()
            assert np.median(at) > 5 * max(1.0, np.median(far))
            # Whole chromosomes are covered (zeros written), so readers see no NaN.
            vals = bw.values("chr1", 0, len(fasta["chr1"]), numpy=True)
            assert not np.isnan(vals).any() and (vals >= 0).all()
        finally:
            bw.close()


def _digest(out: Path) -> dict[str, str]:
    files = ["genome.fa", "genes.gtf", "blacklist.bed", *[f"peaks/{tf}.narrowPeak" for tf in TFS]]
    files += [str(p.relative_to(out)) for p in sorted((out / "truth").glob("*.tsv"))]
    digest = {f: hashlib.sha256((out / f).read_bytes()).hexdigest() for f in files}
    for tf in TFS:
        bw = pyBigWig.open(str(out / "tracks" / f"{tf}.bw"))
        h = hashlib.sha256()
        for chrom, length in bw.chroms().items():
            h.update(bw.values(chrom, 0, length, numpy=True).tobytes())
        bw.close()
        digest[f"tracks/{tf}.bw"] = h.hexdigest()
    return digest


def test_deterministic(demo, tmp_path):
    again = tmp_path / "again"
    simulate_demo(SMALL, again)
    assert _digest(again) == _digest(demo[0])
    other = tmp_path / "other"
    simulate_demo({**SMALL, "seed": SMALL["seed"] + 1}, other)
    assert (other / "genome.fa").read_bytes() != (again / "genome.fa").read_bytes()


def test_unknown_motif(tmp_path):
    tfs = [SMALL["tfs"][0], {"name": "X", "motif": "MA9999.1", "n_peaks": 5}]
    with pytest.raises(
        ConfigError,
        match=r"^simulate\.tfs\[1\]\.motif: 'MA9999\.1' is not in the shipped JASPAR file \(available: MA0139\.2",
    ):
        simulate_demo({**SMALL, "tfs": tfs}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_too_short(tmp_path):
    with pytest.raises(ConfigError, match=r"^simulate\.chromosome_length: 20000 bp is too short for 60 genes"):
        few_peaks = [{**tf, "n_peaks": 5} for tf in SMALL["tfs"]]
        simulate_demo({**SMALL, "chromosome_length": 20000, "n_genes": 60, "tfs": few_peaks}, tmp_path)
    with pytest.raises(ConfigError, match=r"^simulate\.tfs\[0\]\.n_peaks: 900 peaks do not fit"):
        simulate_demo({**SMALL, "tfs": [{"name": "CTCF", "motif": "MA0139.2", "n_peaks": 900}]}, tmp_path)


def test_unwritable_outdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SeqaeError, match="cannot write output here"):
        simulate_demo(SMALL, blocker / "sub")


def test_cli(tmp_path):
    from seqae.cli import main

    config = {
        "simulate": {"enabled": True, **SMALL},
        "genomes": [{"species": "demo", "fasta": "x.fa", "tfs": [{"name": "CTCF", "peaks": "x.narrowPeak"}]}],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "simulate", "--config", str(tmp_path / "config.yaml"), "--outdir", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "tracks" / "FOXA1.bw").is_file()
    config["simulate"]["tfs"][0]["motif"] = "MA9999.1"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["-q", "simulate", "--config", str(tmp_path / "config.yaml"), "--outdir", str(tmp_path / "out2")]) == 2


def kmer_windows(fasta: pyfaidx.Fasta, window: int = 1000, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """k-mer frequencies of non-overlapping N-free windows, shape ``(n, 4**k)``, and their chromosome index."""
    xs, ys = [], []
    for ci, chrom in enumerate(fasta.keys()):
        s = codes(fasta, chrom)
        n = len(s) // window
        w = s[: n * window].reshape(n, window)
        w = w[(w < 4).all(axis=1)].astype(np.int64)
        idx = sum(w[:, j : window - k + 1 + j] * 4 ** (k - 1 - j) for j in range(k))
        counts = np.bincount((idx + np.arange(len(w))[:, None] * 4**k).ravel(), minlength=len(w) * 4**k)
        counts = counts.reshape(len(w), 4**k)
        xs.append(counts / counts.sum(axis=1, keepdims=True))
        ys += [ci] * len(w)
    return np.vstack(xs), np.array(ys)


def test_kmer_chromosome_classifier(tmp_path):
    """On the default settings, 4-mers of 1 kb windows tell chromosomes apart, but far from perfectly."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    settings = fill_defaults({})
    # Peaks and tracks do not matter here; few of them keep the test quick.
    settings["tfs"] = [{"name": "CTCF", "motif": "MA0139.2", "n_peaks": 100}]
    outputs = simulate_demo(settings, tmp_path)
    x, y = kmer_windows(pyfaidx.Fasta(str(outputs["fasta"])))
    chance = 1 / settings["n_chromosomes"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, max_iter=2000))
    accuracy = clf.fit(x_train, y_train).score(x_test, y_test)
    assert chance + 0.1 <= accuracy < 0.95, accuracy
