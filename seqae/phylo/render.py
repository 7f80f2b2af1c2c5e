"""Tree figures with ete3, drawn off screen (PNG, SVG or PDF).

ete3 draws with Qt. On a machine without a display Qt must use its
``offscreen`` platform, which this module selects (``QT_QPA_PLATFORM``) before
ete3's drawing code is imported, unless the caller chose a platform already.
Qt then needs, besides the PyQt5 wheel: the system libraries libGL
(``libgl1``), fontconfig/freetype (``libfontconfig1``), GLib
(``libglib2.0-0``) and a font (``fonts-dejavu-core``).

Leaves can be coloured by a label (a legend maps colours to labels); the
figure has a scale bar (its unit, substitutions/site by default, is named in
the legend) and an optional title. The file
is drawn to a temporary name with the same extension beside the target and
renamed into place, so a failed drawing never leaves a partial figure.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from seqae.errors import SeqaeError
from seqae.fileio import atomic_output

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
if not os.environ.get("XDG_RUNTIME_DIR"):
    # Batch jobs (SLURM, cron) have no session folder, and Qt prints "QStandardPaths: XDG_RUNTIME_DIR not set"
    # on every run; a private folder of this process's own (mode 0700, as Qt requires) keeps the log clean.
    _runtime_dir = tempfile.mkdtemp(prefix="seqae-qt-")
    os.environ["XDG_RUNTIME_DIR"] = _runtime_dir
    atexit.register(shutil.rmtree, _runtime_dir, ignore_errors=True)

__all__ = ["FORMATS", "PALETTE", "label_colors", "render_tree"]

#: Qualitative colours (matplotlib's tab10), cycled for more labels.
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
UNLABELLED_COLOR = "#b0b0b0"
FORMATS = (".png", ".svg", ".pdf")
LAYOUTS = {"rectangular": "r", "circular": "c"}


def label_colors(labels: Mapping[str, str]) -> dict[str, str]:
    """label -> colour, labels in sorted order, palette cycled."""
    return {label: PALETTE[k % len(PALETTE)] for k, label in enumerate(sorted(set(labels.values())))}


def _nice_length(tree) -> float | None:
    """A round scale-bar length near a fifth of the tree's depth (1, 2 or 5 x 10^k)."""
    import math

    depth = max((tree.get_distance(leaf) for leaf in tree.iter_leaves()), default=0.0)
    if not depth > 0:
        return None
    raw = depth / 5
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw * 0.75)


def _names_width(tree, font_size: int) -> int:
    """Pixels the longest leaf name takes beside its branch at ete3's own scale (the dot, a space and the
    figure's margins included): about 0.86 x ``font_size`` per character of DejaVu Sans, measured."""
    longest = max((len(leaf.name or "") for leaf in tree.iter_leaves()), default=0)
    return round(0.9 * font_size * (longest + 4))


def _padded(face, right: int = 10):
    """``face`` with a margin on both sides: ete3 sets the title and the legend flush with the figure's
    edges (the tree style's margins do not reach them), which cut their first letter or circle."""
    face.margin_left, face.margin_right = 10, right
    return face


def _tree_style(
    tree,
    labels: Mapping[str, str] | None,
    layout: str,
    title: str | None,
    font_size: int,
    colors,
    scale_unit: str,
    tree_width: int | None = None,
):
    """ete3's style of the figure; ``tree_width``: pixels from the root to the farthest leaf (rectangular)."""
    from seqae.phylo.ete import CircleFace, NodeStyle, RectFace, TextFace, TreeStyle

    style = TreeStyle()
    style.mode = LAYOUTS[layout]
    style.show_leaf_name = False
    style.scale_length = _nice_length(tree)
    # ete3 makes room for its scale bar as tall as the bar is long (a blank band below a wide tree): where the
    # branch scale is known, the bar is drawn in the legend instead.
    own_bar = layout == "rectangular" and tree_width is not None and style.scale_length is not None
    style.show_scale = not own_bar
    if own_bar:
        style.tree_width = tree_width
    style.margin_left = style.margin_right = style.margin_top = style.margin_bottom = 10
    if title:
        style.title.add_face(_padded(TextFace(title, fsize=font_size + 4, bold=True)), column=0)
    unlabelled = False
    for node in tree.traverse():
        node_style = NodeStyle()
        node_style["hz_line_width"] = node_style["vt_line_width"] = 1
        if node.is_leaf():
            label = labels.get(node.name) if labels else None
            color = (
                colors.get(label, UNLABELLED_COLOR)
                if label is not None
                else ("#000000" if not labels else UNLABELLED_COLOR)
            )
            unlabelled |= bool(labels) and label is None
            node_style["size"] = 6
            node_style["fgcolor"] = color
            node.add_face(TextFace(f" {node.name}", fsize=font_size, fgcolor=color), column=0, position="branch-right")
        else:
            node_style["size"] = 0
        node.set_style(node_style)
    if labels:
        for label, color in colors.items():
            style.legend.add_face(_padded(CircleFace(radius=5, color=color), right=0), column=0)
            style.legend.add_face(TextFace(f" {label}", fsize=font_size), column=1)
        if unlabelled:
            style.legend.add_face(_padded(CircleFace(radius=5, color=UNLABELLED_COLOR), right=0), column=0)
            style.legend.add_face(TextFace(" (no label)", fsize=font_size), column=1)
    if own_bar:
        # ete3's own scale for a rectangular tree with tree_width set: the farthest leaf at tree_width.
        farthest = tree.get_farthest_leaf()[1]
        length = max(1, round(style.scale_length * tree_width / farthest))
        # Under the labels' names, its length and unit below it (each legend column is a stack of its own; a
        # long bar in the dots' column pushed the names away from their dots).
        bar = RectFace(length, 1, "#000000", "#000000")
        bar.margin_top, bar.margin_bottom, bar.margin_left = 8, 2, 4
        style.legend.add_face(bar, column=1)
        caption = TextFace(f" {style.scale_length:g} {scale_unit}".rstrip(), fsize=font_size, fgcolor="#555555")
        caption.margin_right = 10  # ete3 sets the legend flush with the figure's right edge
        style.legend.add_face(caption, column=1)
    elif scale_unit and style.scale_length:
        # ete3 writes the scale bar's length without a unit: the legend names it.
        style.legend.add_face(
            _padded(TextFace(f"scale bar: {scale_unit}", fsize=font_size, fgcolor="#555555")), column=1
        )
    style.legend_position = 4  # bottom right
    return style


def render_tree(
    tree,
    path: str | os.PathLike[str],
    labels: Mapping[str, str] | None = None,
    layout: str = "rectangular",
    title: str | None = None,
    width: int = 800,
    font_size: int = 10,
    colors: Mapping[str, str] | None = None,
    dpi: int = 90,
    scale_unit: str = "substitutions/site",
) -> Path:
    """Draw a tree to PNG, SVG or PDF (chosen by the extension of ``path``).

    Args:
        tree: ``ete3.Tree`` with branch lengths (not modified: a copy is drawn).
        path: output file, ``.png``, ``.svg`` or ``.pdf``.
        labels: leaf name -> label; leaves are coloured by label and a legend
            is added. Leaves without a label are grey.
        layout: ``"rectangular"`` or ``"circular"``.
        title: text above the tree.
        width: figure width in pixels (the height follows the tree); a rectangular figure is wider where
            its leaf names need more than half of it.
        font_size: leaf name size in points.
        colors: label -> colour (``"#rrggbb"`` or a Qt colour name); default
            :func:`label_colors`.
        dpi: resolution written into PNG/PDF files.
        scale_unit: unit of the branch lengths, written beside the legend
            to name the scale bar's unit ("" leaves it out).

    Returns:
        ``Path(path)``.

    Raises:
        ValueError: unknown extension or layout.
        SeqaeError: the figure could not be written.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"figure format must be one of {', '.join(FORMATS)}, got {target.name!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    drawn = tree.copy()
    colors = dict(colors) if colors is not None else label_colors(labels or {})
    scaled_to: int | None = width
    tree_width = None
    if layout == "rectangular":
        # ete3 scales the whole drawing to the width: long leaf names took it from the branches (46-character
        # names left them a third), short ones blew the text up. The branches get what the names leave, at
        # least half; names that need more widen the figure instead of shrinking to unreadable.
        names = _names_width(drawn, font_size)
        tree_width = max(width - names, width // 2)
        if tree_width + names > width:
            scaled_to = None
    style = _tree_style(drawn, labels, layout, title, font_size, colors, scale_unit, tree_width)
    # ete3 picks the format from the extension, so the temporary file keeps it.
    with atomic_output(target, suffix=suffix) as tmp:
        drawn.render(str(tmp), tree_style=style, w=scaled_to, units="px", dpi=dpi)
        if tmp.stat().st_size == 0:
            raise SeqaeError(f"{target}: ete3 wrote an empty figure")
    return target
