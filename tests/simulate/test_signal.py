"""seqae.simulate.signal: the bigWig signal."""

from __future__ import annotations

import numpy as np
import pyBigWig

from tests.simulate.conftest import TFS, tsv


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
