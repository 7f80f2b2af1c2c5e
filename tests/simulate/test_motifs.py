"""seqae.simulate.motifs: planted motif sites."""

from __future__ import annotations

import numpy as np

from seqae.simulate.motifs import score_sites, shipped_motifs
from tests.simulate.conftest import TFS, codes, tsv


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
