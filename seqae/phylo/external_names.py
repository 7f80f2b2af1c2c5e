"""Sequence names for external tree programs: ``s0 .. s{n-1}`` out, the family's names back.

IQ-TREE replaces every character of a name but letters, digits and ``_ - . /
|`` with ``_`` (``t0+v0`` comes back as ``t0_v0``, ``Müller`` as
``M__ller``), and other programs have rules of their own. Names that a Newick
tree can hold (:mod:`seqae.phylo.io`) may still hold such characters, so the
alignment goes out under neutral names and the tree that comes back is
renamed leaf by leaf.
"""

from __future__ import annotations

from collections.abc import Sequence

from seqae.errors import SeqaeError

__all__ = ["external_names", "renamed_for_external", "restore_names"]


def external_names(n: int) -> list[str]:
    """``n`` neutral names, ``s0 .. s{n-1}``, in the alignment's row order."""
    return [f"s{i}" for i in range(n)]


def renamed_for_external(tree, names: Sequence[str]):
    """A copy of ``tree`` (``ete3.Tree`` on ``names``) with its leaves under :func:`external_names`."""
    neutral = dict(zip(names, external_names(len(names))))
    out = tree.copy()
    for leaf in out.get_leaves():
        leaf.name = neutral[leaf.name]
    return out


def restore_names(tree, names: Sequence[str], program: str):
    """Rename the leaves of ``tree`` (in place; it is returned) from neutral names back to ``names``.

    Raises:
        SeqaeError: a leaf that is not one of the neutral names, or a name twice.
    """
    seen = set()
    for leaf in tree.get_leaves():
        label = leaf.name
        i = int(label[1:]) if label[:1] == "s" and label[1:].isdigit() else -1
        if not 0 <= i < len(names) or i in seen:
            raise SeqaeError(f"{program} returned a tree with an unexpected leaf {label!r}")
        seen.add(i)
        leaf.name = names[i]
    return tree
