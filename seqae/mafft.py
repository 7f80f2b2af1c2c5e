"""MAFFT, run as a subprocess on the families of ``seqae orthologs``: one family, or many at a time."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from seqae.errors import SeqaeError

__all__ = ["align_families", "align_family"]


def align_family(records: Mapping[str, str], mafft: str = "mafft") -> dict[str, str]:
    """Align a family's sequences with MAFFT (``--auto``); names and order kept.

    Raises:
        SeqaeError: MAFFT is not installed, or it failed (its last message).
    """
    exe = shutil.which(mafft)
    if exe is None:
        raise SeqaeError(
            "orthologs.align: MAFFT is not installed (apt install mafft, or conda install -c bioconda mafft); "
            "or set align: none when the genomes share coordinates"
        )
    with tempfile.TemporaryDirectory(prefix="seqae-mafft-") as tmp:
        fasta = Path(tmp) / "in.fa"
        fasta.write_text("".join(f">{name}\n{seq}\n" for name, seq in records.items()))
        proc = subprocess.run([exe, "--auto", "--quiet", "--thread", "1", str(fasta)],
                              capture_output=True, text=True, check=False)  # fmt: skip
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise SeqaeError(f"MAFFT failed (exit {proc.returncode}): {last}")
    aligned: dict[str, list[str]] = {}
    name = None
    for line in proc.stdout.splitlines():
        if line.startswith(">"):
            name = line[1:].strip()
            aligned[name] = []
        elif name is not None:
            aligned[name].append(line.strip().upper())
    if set(aligned) != set(records):
        raise SeqaeError("MAFFT returned other sequence names than it was given")
    return {n: "".join(aligned[n]) for n in records}


def align_families(families: Sequence[Mapping[str, str]], threads: int = 1) -> list[dict[str, str]]:
    """:func:`align_family` on each family, ``threads`` single-threaded MAFFT processes at a time;
    the alignments (in ``families`` order) are those of one process after another."""
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        return list(pool.map(align_family, families))
