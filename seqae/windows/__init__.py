"""The windows file, the layer every stage after extraction reads.

* :mod:`seqae.windows.store`: its schema (:class:`~seqae.windows.store.WindowsSchema`),
  the writer that extraction and sharding use, and the label and window readers;
* :mod:`seqae.windows.reader`: rows of ``/seq`` and ``/tracks`` with the HDF5
  chunks inflated in parallel threads (embedding, evaluation, training's staging);
* :mod:`seqae.windows.dataset`: the torch dataset over a split, staged on the
  device, with the cropping and augmentation training applies.

The layout is documented in ``docs/windows_schema.md``.
"""
