"""seqae: sequence autoencoders over TF ChIP-seq peak windows.

The package is organised by concern: ``genome`` (FASTA access, base codes,
chromosome names), ``intervals`` (peaks, summits, blacklists), ``tracks``
(bigWig), ``annotation`` (genes, TSS distance), ``store`` (the windows HDF5
file), ``extract`` (the pipeline stage that ties them together) and
``simulate`` (the embedded demo data).  ``seqae.cli`` is the command line.
"""

__version__ = "0.1.0"
