"""seqae.phylo.io: Newick, NHX and FASTA families, read and written, and their bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from seqae.errors import InputError
from seqae.phylo.compare import normalized_rf
from seqae.phylo.distance import patristic_distances
from seqae.phylo.ete import Tree
from seqae.phylo.io import read_family, read_tree, write_family, write_newick, write_nhx
from seqae.phylo.nj import neighbor_joining
from tests.phylo.conftest import random_additive


def bio_newick(tree) -> str:
    from Bio import Phylo

    out = io.StringIO()
    Phylo.write(tree, out, "newick")
    return out.getvalue().strip()


def test_newick_round_trip_ete3_and_biopython(tmp_path: Path) -> None:
    from Bio import Phylo

    rng = np.random.default_rng(3)
    tree, dist, names = random_additive(rng, 12)
    path = write_newick(tree, tmp_path / "trees" / "t.nwk")
    back = read_tree(path, names)
    assert normalized_rf(back, tree) == 0.0
    assert np.allclose(patristic_distances(back, names)[0], dist, rtol=1e-10, atol=1e-12)
    bio = Phylo.read(path, "newick")
    assert sorted(c.name for c in bio.get_terminals()) == sorted(names)
    assert bio.total_branch_length() == pytest.approx(sum(node.dist for node in tree.traverse()), rel=1e-10)
    assert normalized_rf(Tree(bio_newick(bio), format=1), tree) == 0.0
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_nhx_round_trip_ete3_and_biopython(tmp_path: Path) -> None:
    from Bio import Phylo

    tree = neighbor_joining(random_additive(np.random.default_rng(4), 8)[1], [f"seq{i}" for i in range(8)])
    for k, node in enumerate(tree.traverse()):
        node.add_feature("disc_score", round(0.1 * k, 3))
        if node.is_leaf():
            node.add_feature("label", f"chr{k % 3}")
    path = write_nhx(tree, tmp_path / "t.nhx", ["disc_score", "label"])
    back = read_tree(path, tree.get_leaf_names())
    assert normalized_rf(back, tree) == 0.0
    for old, new in zip(tree.traverse("preorder"), back.traverse("preorder")):
        assert float(new.disc_score) == old.disc_score
        assert new.dist == pytest.approx(old.dist, rel=1e-10, abs=1e-12)
        if old.is_leaf():
            assert (new.name, new.label) == (old.name, old.label)
    bio = Phylo.read(path, "newick")
    terminal = {c.name: c.comment for c in bio.get_terminals()}
    leaf = tree.get_leaves()[0]
    assert f"disc_score={leaf.disc_score}" in terminal[leaf.name] and f"label={leaf.label}" in terminal[leaf.name]
    assert bio.root.comment == f"&&NHX:disc_score={tree.disc_score}"


def test_write_rejects_unwritable_names_and_values(tmp_path: Path) -> None:
    tree = Tree("((a,b),c,(d,e));")
    tree.get_leaves()[0].name = "bad:name"
    with pytest.raises(ValueError, match="cannot hold"):
        write_newick(tree, tmp_path / "x.nwk")
    tree = Tree("((a,b),c,(d,e));")
    tree.add_feature("note", "x=1")
    with pytest.raises(ValueError, match="reserved"):
        write_nhx(tree, tmp_path / "x.nhx", ["note"])
    assert not list(tmp_path.iterdir())


def test_read_family_good(tmp_path: Path) -> None:
    path = tmp_path / "fam.fa"
    path.write_text(">a desc\nACGT\nacgt\n\n>b\nACGTNNRY\n>c\nAC-TACGT\n>d\nACGUACGT\n")
    family = read_family(path)
    assert family.names == ["a", "b", "c", "d"]
    assert family.sequences[0] == "ACGTACGT"
    assert family.aligned
    assert family.codes().shape == (4, 8)
    assert family.codes()[3, 3] == 3  # U read as T
    out = write_family(family, tmp_path / "copy.fa", line_width=3)
    assert read_family(out).as_dict() == family.as_dict()
    # Unaligned families are fine when no alignment is required.
    path.write_text(">a\nACGT\n>b\nACG\n>c\nACGTT\n>d\nA\n")
    family = read_family(path, aligned_required=False)
    assert not family.aligned
    with pytest.raises(ValueError, match="not aligned"):
        family.codes()


def test_read_family_takes_question_marks_as_missing_and_a_byte_order_mark(tmp_path: Path) -> None:
    # '?' is missing data as PHYLIP/NEXUS (and IQ-TREE) write it; a UTF-8 BOM is what some editors save.
    path = tmp_path / "fam.fa"
    path.write_bytes(b"\xef\xbb\xbf>a\r\nAC?T\r\n>b\r\nACGT\r\n>c\r\nA-GT\r\n>d\r\nAC.T\r\n")
    family = read_family(path)
    assert family.names == ["a", "b", "c", "d"]
    codes = family.codes()
    assert codes[0, 2] == codes[2, 1] == codes[3, 2] == 4  # ?, - and . all missing


FOUR = ">a\nACGT\n>b\nACGT\n>c\nACGT\n>d\nACGT\n"


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("", None, "empty file: no FASTA records"),
        ("\n \n", None, "empty file: no FASTA records"),
        ("ACGT\n>a\nACGT\n", 1, "sequence text before the first '>' header"),
        (">a\nACGT\n>\nACGT\n", 3, "FASTA header has no name"),
        (">a\nACGT\n>b(1)\nACGT\n", 3, "FASTA header name 'b(1)' contains '(', which a Newick tree cannot hold"),
        (
            ">a\nACGT\n>b=1\nACGT\n",
            3,
            "FASTA header name 'b=1' contains '=', which the Newick trees written by ete3 turn into '_'",
        ),
        (">a\nACGT\n>b\nACGT\n>a\nACGT\n>c\nACGT\n", 5, "duplicate sequence name 'a' (first at line 1)"),
        (
            ">a\nACGT\n>b\nACGT\nACXT\n>c\nACGT\n>d\nACGT\n",
            5,
            "character 'X' at column 3 of record 'b' is not IUPAC DNA",
        ),
        (">a\nACGT\n>b\n>c\nACGT\n>d\nACGT\n>e\nACGT\n", 3, "record 'b' has no sequence"),
        (">a\nACGT\n>b\nACGT\n>c\nACGT\n", None, "only 3 sequences; a family needs at least 4"),
        (
            FOUR.replace(">c\nACGT", ">c\nACGTA"),
            5,
            "record 'c' has 5 characters but 'a' has 4; an alignment needs sequences of equal length",
        ),
    ],
)
def test_read_family_bad_input(tmp_path: Path, text: str, line: int | None, message: str) -> None:
    path = tmp_path / "fam.fa"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_family(path, aligned_required=True)
    where = f"{path}:{line}" if line else str(path)
    assert str(info.value) == f"{where}: {message}"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, name",
    [
        ("LOCUS       AB000001 120 bp DNA\n", "GenBank or EMBL"),
        ("@read1\nACGT\n+\nIIII\n", "FASTQ"),
        ("!!NA_MULTIPLE_ALIGNMENT 1.0\n", "MSF"),
    ],
)
def test_read_family_names_a_format_it_does_not_read(tmp_path: Path, text: str, name: str) -> None:
    path = tmp_path / "aln.txt"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_family(path)
    assert str(info.value) == (
        f"{path}:1: sequence text before the first '>' header; this looks like a {name} file, which the tree "
        "stage does not read: convert it to aligned FASTA"
    )


@pytest.mark.parametrize("fmt", ["nexus", "phylip-relaxed", "phylip", "stockholm", "clustal"])
def test_read_family_reads_the_alignment_formats_of_phylogenetics_programs(tmp_path: Path, fmt: str) -> None:
    from Bio import AlignIO
    from Bio.Align import MultipleSeqAlignment
    from Bio.Seq import Seq
    from Bio.SeqRecord import SeqRecord

    rng = np.random.default_rng(0)
    names = ["Homo_sap", "Pan_trog", "Gorilla", "Pongo", "Macaca"]
    seqs = ["".join(rng.choice(list("ACGT-"), 130)) for _ in names]
    seqs[2] = "n" + seqs[2][1:]  # lower case and N survive too
    records = [SeqRecord(Seq(s), id=n, name=n, description="", annotations={"molecule_type": "DNA"})
               for n, s in zip(names, seqs)]  # fmt: skip
    path = tmp_path / f"aln.{fmt}"
    AlignIO.write(MultipleSeqAlignment(records), path, fmt)
    family = read_family(path)
    assert family.names == names and family.sequences == [s.upper() for s in seqs]


def test_strict_phylip_with_names_filling_ten_columns_is_read_by_its_header(tmp_path: Path) -> None:
    """EMBOSS and old PHYLIP write names in 10 columns glued to the bases; read as relaxed PHYLIP, the first
    bases went into the names and the alignment lost as many columns, with exit status 0."""
    rows = {"Homo_sapie": "ACGTACGTAC" * 3, "Gorilla_go": "ACGTACGTAA" * 3, "Pan_troglo": "ACGAACGTAC" * 3,
            "Pongo_abel": "TCGTACGTAC" * 3}  # fmt: skip
    path = tmp_path / "strict.phy"
    path.write_text(" 4 30\n" + "".join(f"{name}{seq[:10]} {seq[10:]}\n" for name, seq in rows.items()))
    family = read_family(path)
    assert family.names == list(rows) and family.sequences == list(rows.values())
    path.write_text(" 4 31\n" + "".join(f"{name} {seq}\n" for name, seq in rows.items()))
    with pytest.raises(InputError) as info:
        read_family(path)
    assert str(info.value).endswith(
        "not a readable PHYLIP alignment (the header says 4 sequences of 31 columns; read as phylip-relaxed: 4 of 30)"
    )
    path.write_text(" 3 30\n" + "".join(f"{name} {seq}\n" for name, seq in rows.items()))
    with pytest.raises(InputError, match=r"; does the header's 3 sequences of 30 columns fit the file\?\)$"):
        read_family(path)


def test_read_family_checks_other_formats_as_fasta(tmp_path: Path) -> None:
    path = tmp_path / "aln.phy"
    path.write_text(" 4 4\na ACGT\nb ACGT\nc ACXT\nd ACGT\n")
    with pytest.raises(InputError) as info:
        read_family(path)
    assert str(info.value) == f"{path}: character 'X' at column 3 of record 'c' is not IUPAC DNA"
    path.write_text(" 4 4\na ACGT\nb ACGT\na ACGT\nd ACGT\n")
    with pytest.raises(InputError, match=r"duplicate sequence name 'a' \(first at record 1\)"):
        read_family(path)
    path.write_text("#NEXUS\nbegin data;\n dimensions ntax=4 nchar=4;\n matrix\n a ACGT\n;\nend;\n")
    with pytest.raises(InputError, match=r"^.*aln.phy: not a readable NEXUS alignment \(.+\)$"):
        read_family(path)


def test_read_family_reads_gzip_and_names_a_header_that_is_not_utf8(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "fam.fa.gz"
    path.write_bytes(gzip.compress(FOUR.replace(">c", ">Müller_c").encode()))
    assert read_family(path).names == ["a", "b", "Müller_c", "d"]
    path = tmp_path / "latin1.fa"
    path.write_bytes(FOUR.replace(">c", ">Müller_c").encode("latin-1"))
    with pytest.raises(InputError) as info:
        read_family(path)
    assert str(info.value) == f"{path}:5: FASTA header name is not UTF-8 text (byte 0xfc); save the file as UTF-8"


def test_read_family_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_family(tmp_path / "nope.fa")


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty file: no Newick tree"),
        ("((a,b),c", "not a valid Newick tree: the tree does not end with ';'"),
        ("((a,b),c));", "not a valid Newick tree: unmatched ')' at character 10"),
        ("((a,b),(c,d);", "not a valid Newick tree: 1 '(' not closed"),
        ("(a,b),(c,d);", "not a valid Newick tree: text after the outermost ')'"),
        ("((a,b),(c,d));((a,c),(b,d));", "not a valid Newick tree: 2 ';' found"),
        ("abc;", "not a valid Newick tree: the tree does not start with '('"),
        ("((a:x,b),(c,d));", "not a valid Newick tree: Unexpected newick format 'a:x'"),
        ("((a,b),(c,a));", "duplicate leaf names: 'a'"),
        ("((a,b),(c,));", "not a valid Newick tree: Empty leaf node found"),
        (
            "#NEXUS\nbegin trees;\ntree a = ((a,b),(c,d));\ntree b = ((a,c),(b,d));\nend;\n",
            "the NEXUS file holds 2 trees; expected exactly one",
        ),
    ],
)
def test_read_tree_bad_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.nwk"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        read_tree(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


def test_read_tree_leaves_must_match_family(tmp_path: Path) -> None:
    path = tmp_path / "t.nwk"
    path.write_text("((a:1,b:1):1,(c:1,x:1):1,(y:1,z:1):1);")
    with pytest.raises(InputError) as info:
        read_tree(path, ["a", "b", "c", "d", "e", "f", "g"])
    assert str(info.value) == (
        f"{path}: tree leaves do not match the FASTA: 3 only in the tree ('x', 'y', 'z'); "
        "4 only in the FASTA ('d', 'e', 'f', 'g')"
    )
    assert read_tree(path, ["a", "b", "c", "x", "y", "z"]).get_leaf_names() == ["a", "b", "c", "x", "y", "z"]


@pytest.mark.parametrize(
    "text",
    [
        "(('a':0.1,'b':0.2):0.05,c:0.3,d:0.4);",  # quoted names, as IQ-TREE writes odd ones
        "[&R] ((a[&rate=1.1]:0.1,b:0.2):0.05,c:0.3,d:0.4);",  # BEAST's comments
        "\ufeff((a:0.1,b:0.2)95:0.05,c:0.3,d:0.4);\r\n",  # byte-order mark, support label, Windows line end
        "#NEXUS\nbegin trees;\n translate 1 a, 2 b, 3 c, 4 d;\n"
        " tree con_50 = [&U] ((1:0.1,2:0.2)1.00:0.05,3:0.3,4:0.4);\nend;\n",  # MrBayes' consensus
        # MrBayes' .con.tre: annotations with quotes, parentheses and braces on nodes and branches
        "#NEXUS\n[ID: 42]\nbegin trees;\n translate 1 a, 2 b, 3 c, 4 d;\n tree con_50_majrule = [&U] "
        '((1[&prob=1.0,prob(percent)="100",prob+-sd="100+-0"]:0.1[&length_mean=0.1,length_95%HPD={0.08,0.12}],'
        "2:0.2)[&prob=0.95]:0.05,3:0.3,4:0.4);\nend;\n",
        # BEAST's TreeAnnotator (MCC tree): [&R] and node annotations, no TRANSLATE
        "#NEXUS\nbegin trees;\n tree TREE1 = [&R] ((a[&height=0.0,rate=1.2]:0.1,b[&height=0.0]:0.2)"
        "[&height=0.2,posterior=1.0]:0.05,(c:0.3,d:0.4));\nend;\n",
    ],
)
def test_read_tree_takes_the_files_other_programs_write(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.tree"
    path.write_text(text, encoding="utf-8")
    tree = read_tree(path, ["a", "b", "c", "d"])
    assert normalized_rf(tree, Tree("((a,b),c,d);")) == 0.0
    assert {leaf.name: leaf.dist for leaf in tree.get_leaves()} == pytest.approx(
        {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.4}
    )


def test_a_nexus_tree_keeps_its_branch_lengths_digits(tmp_path: Path) -> None:
    path = tmp_path / "t.nex"
    path.write_text("#NEXUS\nbegin trees;\n tree t = ((a:0.123456789012,b:0.2):0.05,c:0.3,d:0.4);\nend;\n")
    assert read_tree(path).get_leaves_by_name("a")[0].dist == 0.123456789012


def test_read_tree_keeps_nhx_attributes_beside_other_comments(tmp_path: Path) -> None:
    path = tmp_path / "t.nhx"
    path.write_text("((a[&rate=1.2]:0.1,b:0.2):0.05[&&NHX:S=x],c:0.3,d:0.4);")
    tree = read_tree(path)
    assert [node.S for node in tree.traverse() if hasattr(node, "S")] == ["x"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda text: __import__("bz2").compress(text), r"is bzip2-compressed: decompress it"),
        (lambda text: __import__("lzma").compress(text), r"is xz-compressed: decompress it"),
        (lambda text: text.decode().encode("utf-16"), r"is UTF-16 text: save it as UTF-8"),
        (lambda text: b"\x00\x01\x02" + text, r"is a binary file, not text"),
    ],
)
def test_a_compressed_or_binary_alignment_is_named_as_such(tmp_path: Path, make, message: str) -> None:
    """Each said "sequence text before the first '>' header", which does not say what the file is."""
    path = tmp_path / "fam.fa"
    path.write_bytes(make(FOUR.encode()))
    with pytest.raises(InputError, match=f"^{path}: {message}"):
        read_family(path)
