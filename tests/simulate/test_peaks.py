"""seqae.simulate.peaks: narrowPeak files and the kinds of peaks."""

from __future__ import annotations

import pandas as pd

from tests.simulate.conftest import TFS, tsv


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


def test_peak_kinds(demo):
    peaks = tsv(demo[0] / "truth" / "peaks.tsv")
    assert set(peaks["kind"]) >= {"distal", "promoter"}
    prom = peaks[peaks["kind"] == "promoter"]
    assert (prom["tss_distance"] <= 1000).all() and (prom["promoter_family"] != "").all()
    assert (peaks.loc[peaks["kind"] == "distal", "tss_distance"] >= 2000).all()
    # The second TF shares some peaks with the first (co-binding).
    cob = peaks[(peaks["tf"] == "FOXA1") & (peaks["kind"] == "cobound")]
    assert len(cob) > 0 and (cob["cobound_with"] == "CTCF").all()
