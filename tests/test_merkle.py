"""The audit Merkle tree against RFC 6962's own definitions and the published test vectors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable, Sequence
from functools import cache
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channelflow.audit.merkle import (
    EMPTY_ROOT,
    RootBuilder,
    Tree,
    event_leaf,
    leaf_hash,
    node_hash,
    root_from_inclusion,
    verify_consistency,
    verify_inclusion,
)

H = TypeVar("H")

# --- A straightforward reference: RFC 6962 section 2.1, transcribed recursion for recursion ---
# Generic over the node function so the same recursion also runs on symbols (see _formula).


def _k(n: int) -> int:
    """The largest power of two smaller than n, found the slow, obvious way."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: Sequence[H], node: Callable[[H, H], H]) -> H:
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node(ref_mth(d[:k], node), ref_mth(d[k:], node))


def ref_path(m: int, d: Sequence[H], node: Callable[[H, H], H]) -> list[H]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k], node), ref_mth(d[k:], node)]
    return [*ref_path(m - k, d[k:], node), ref_mth(d[:k], node)]


def ref_subproof(m: int, d: Sequence[H], b: bool, node: Callable[[H, H], H]) -> list[H]:
    if m == len(d):
        return [] if b else [ref_mth(d, node)]
    k = _k(len(d))
    if m <= k:
        return [*ref_subproof(m, d[:k], b, node), ref_mth(d[k:], node)]
    return [*ref_subproof(m - k, d[k:], False, node), ref_mth(d[:k], node)]


def sha_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def sha_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def mth(leaves: Sequence[bytes]) -> bytes:
    return ref_mth(leaves, sha_node) if leaves else hashlib.sha256(b"").digest()


def path(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    return ref_path(m, leaves, sha_node)


def proof(m: int, leaves: Sequence[bytes]) -> list[bytes]:
    return ref_subproof(m, leaves, True, sha_node)


LEAVES = [sha_leaf(i.to_bytes(4, "big")) for i in range(3000)]
SMALL = 64
SMALL_TREE = Tree.from_leaves(LEAVES[:SMALL])

# --- Which wrong claims a verifier must accept -------------------------------------------------
# A tree's size is not hashed into its root, so a proof can also be valid for another index or
# size whose proof has the same shape (e.g. leaf 0's path in a tree of 3 reads as one in a tree
# of 4 whose third leaf hash is taken for an interior node). Checked trees are signed with their
# size for that reason. The tests therefore predict, from the reference recursion run on symbols,
# exactly which (index, size) claims a proof supports: those whose roots are the same formula
# over the proof's elements. Everything else must be rejected.


def _sym(n: int) -> list[str]:
    return [f"[{i}]" for i in range(n)]


def sym_node(left: str, right: str) -> str:
    return f"({left},{right})"


def _substitute(text: str, parts: Sequence[str]) -> str:
    for i, part in enumerate(parts):
        text = text.replace(part, f"#{i}")
    return text


@cache
def inclusion_formula(index: int, size: int) -> str:
    """The root of `size` as a formula over the proof's hashes and the leaf (#L)."""
    d = _sym(size)
    formula = _substitute(ref_mth(d, sym_node), ref_path(index, d, sym_node))
    formula = formula.replace(f"[{index}]", "#L")
    assert "[" not in formula
    return formula


@cache
def consistency_formula(old_size: int, size: int) -> tuple[str, str]:
    """Old and new roots as formulas over the proof's hashes and the given old root (#old)."""
    d = _sym(size)
    old, new = ref_mth(d[:old_size], sym_node), ref_mth(d, sym_node)
    if old_size & (old_size - 1) == 0:
        new, old = new.replace(old, "#old"), "#old"
    parts = ref_subproof(old_size, d, True, sym_node)
    old, new = _substitute(old, parts), _substitute(new, parts)
    assert "[" not in old + new
    return old, new


def inclusion_claim_holds(claim: tuple[int, int], truth: tuple[int, int]) -> bool:
    index, size = claim
    if not 0 <= index < size:
        return False
    return inclusion_formula(index, size) == inclusion_formula(*truth)


def consistency_claim_holds(claim: tuple[int, int], truth: tuple[int, int]) -> bool:
    """For a non-empty proof from truth[0] < truth[1]."""
    old_size, size = claim
    if not 0 < old_size < size:
        return False
    true_old, true_new = consistency_formula(*truth)
    old, new = consistency_formula(old_size, size)
    # When the claim's old size is a power of two its verifier takes the given old root as is.
    old, new = old.replace("#old", true_old), new.replace("#old", true_old)
    return (old, new) == (true_old, true_new)


def test_the_size_is_not_bound_into_the_root() -> None:
    # The known example behind the predicates above, checked with real hashes.
    three = Tree.from_leaves(LEAVES[:3])
    inclusion = three.inclusion_proof(0)
    assert verify_inclusion(LEAVES[0], 0, 4, inclusion, three.root())
    assert inclusion_claim_holds((0, 4), (0, 3))
    assert not inclusion_claim_holds((0, 5), (0, 3))
    consistency = three.consistency_proof(1)
    assert verify_consistency(1, 4, three.root(1), three.root(), consistency)
    assert consistency_claim_holds((1, 4), (1, 3))


# --- Known answers: RFC 6962 test vectors -----------------------------------------------------
# From transparency-dev/merkle, proof/verify_test.go (the same values are in
# google/certificate-transparency-go's merkletree tests): the `leaves`, `roots`,
# `inclusionProofs` (leaf numbers there are 1-based) and `consistencyProofs` tables.

KAT_DATA = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]
KAT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",  # empty: SHA-256("")
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
KAT_INCLUSION = [  # (0-based index, size, proof)
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (0, 1, []),
]
KAT_CONSISTENCY = [  # (old size, size, proof)
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
KAT_LEAVES = [leaf_hash(data) for data in KAT_DATA]
KAT_TREE = Tree.from_leaves(KAT_LEAVES)
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def test_hash_functions() -> None:
    assert EMPTY_ROOT.hex() == KAT_ROOTS[0]
    assert leaf_hash(b"").hex() == KAT_ROOTS[1]
    assert leaf_hash(b"abc") == sha_leaf(b"abc")
    assert node_hash(b"l" * 32, b"r" * 32) == sha_node(b"l" * 32, b"r" * 32)
    chain_hash = hashlib.sha256(b"an audit event").hexdigest()
    assert event_leaf(chain_hash) == sha_leaf(bytes.fromhex(chain_hash))
    assert event_leaf(chain_hash.upper()) == event_leaf(chain_hash)


@pytest.mark.parametrize("text", ["", "ab", "0" * 62, "0" * 66, "zz" * 32])
def test_event_leaf_refuses_anything_but_a_32_byte_hash(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        event_leaf(text)


def test_known_roots() -> None:
    incremental, builder = Tree(), RootBuilder()
    for size, expected in enumerate(KAT_ROOTS):
        assert KAT_TREE.root(size).hex() == expected
        assert incremental.root().hex() == expected
        assert builder.root().hex() == expected
        if size < len(KAT_LEAVES):
            incremental.append(KAT_LEAVES[size])
            builder.add(KAT_LEAVES[size])
    assert KAT_TREE.root().hex() == KAT_ROOTS[8]


@pytest.mark.parametrize(("index", "size", "expected"), KAT_INCLUSION)
def test_known_inclusion_proofs(index: int, size: int, expected: list[str]) -> None:
    known = [bytes.fromhex(h) for h in expected]
    root = bytes.fromhex(KAT_ROOTS[size])
    assert KAT_TREE.inclusion_proof(index, size) == known
    assert root_from_inclusion(KAT_LEAVES[index], index, size, known) == root
    assert verify_inclusion(KAT_LEAVES[index], index, size, known, root)
    assert not verify_inclusion(KAT_LEAVES[index], index, size, known, SOME_HASH)


@pytest.mark.parametrize(("old_size", "size", "expected"), KAT_CONSISTENCY)
def test_known_consistency_proofs(old_size: int, size: int, expected: list[str]) -> None:
    known = [bytes.fromhex(h) for h in expected]
    old_root, root = bytes.fromhex(KAT_ROOTS[old_size]), bytes.fromhex(KAT_ROOTS[size])
    assert KAT_TREE.consistency_proof(old_size, size) == known
    assert verify_consistency(old_size, size, old_root, root, known)
    if known:
        assert not verify_consistency(old_size, size, root, old_root, known)


ROOT_1, ROOT_2 = hashlib.sha256(b"don't care 1").digest(), hashlib.sha256(b"don't care 2").digest()


@pytest.mark.parametrize(
    ("old_size", "size", "old_root", "root", "given", "valid"),
    [
        # transparency-dev/merkle TestVerifyConsistency's edge cases (32-byte roots here).
        (0, 0, ROOT_1, ROOT_2, [], False),
        (1, 1, ROOT_1, ROOT_2, [], False),
        (0, 0, ROOT_1, ROOT_1, [], True),
        (1, 1, ROOT_2, ROOT_2, [], True),
        (1, 0, ROOT_1, ROOT_2, [], False),
        (2, 1, ROOT_1, ROOT_2, [], False),
        (1, 2, ROOT_1, ROOT_2, [], False),
        (0, 0, EMPTY_ROOT, ROOT_2, [], False),
        (1, 1, EMPTY_ROOT, ROOT_2, [], False),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, [EMPTY_ROOT], False),
        # Unlike that library, nothing is proven from the empty tree, even with no proof.
        (0, 1, ROOT_1, ROOT_2, [], False),
        (0, 1, EMPTY_ROOT, ROOT_2, [], False),
        # Hashes of the wrong length.
        (1, 1, b"short", b"short", [], False),
        (1, 2, LEAVES[0], mth(LEAVES[:2]), [LEAVES[1][:31]], False),
        (-1, 2, ROOT_1, ROOT_2, [ROOT_1], False),
    ],
)
def test_consistency_edge_cases(
    old_size: int, size: int, old_root: bytes, root: bytes, given: list[bytes], valid: bool
) -> None:
    assert verify_consistency(old_size, size, old_root, root, given) is valid


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1), (-1, 1)])
def test_inclusion_edge_cases(index: int, size: int) -> None:
    # transparency-dev/merkle TestVerifyInclusion: none of these verify with an empty proof.
    assert not verify_inclusion(SOME_HASH, index, size, [], b"")
    assert not verify_inclusion(b"", index, size, [], EMPTY_ROOT)
    assert not verify_inclusion(SOME_HASH, index, size, [], EMPTY_ROOT)
    if not 0 <= index < size:
        with pytest.raises(ValueError, match="outside"):
            root_from_inclusion(SOME_HASH, index, size, [])


def test_single_leaf_inclusion() -> None:
    leaf = leaf_hash(b"data")
    assert verify_inclusion(leaf, 0, 1, [], leaf)
    assert not verify_inclusion(leaf, 0, 1, [], b"")
    assert not verify_inclusion(b"", 0, 1, [], leaf)
    assert not verify_inclusion(b"", 0, 1, [], b"")


# --- Every shape up to 64 leaves, against the reference ---------------------------------------


def test_roots_of_every_size_match_the_reference() -> None:
    incremental, builder = Tree(), RootBuilder()
    for size in range(SMALL + 1):
        expected = mth(LEAVES[:size])
        assert SMALL_TREE.root(size) == expected
        assert Tree.from_leaves(LEAVES[:size]).root() == expected
        assert incremental.root() == expected
        assert (incremental.size, len(incremental)) == (size, size)
        assert builder.root() == expected
        assert builder.size == size
        incremental.append(LEAVES[size])
        builder.add(LEAVES[size])


def test_appending_continues_a_bulk_built_tree() -> None:
    for start in range(20):
        tree = Tree.from_leaves(LEAVES[:start])
        for size in range(start, 40):
            assert tree.root() == mth(LEAVES[:size])
            if size:
                assert tree.inclusion_proof(size - 1) == path(size - 1, LEAVES[:size])
            tree.append(LEAVES[size])
        assert [tree.leaf(i) for i in range(40)] == LEAVES[:40]


def _flipped(hashes: list[bytes], at: int, bit: int) -> list[bytes]:
    changed = bytearray(hashes[at])
    changed[bit // 8] ^= 1 << (bit % 8)
    return [*hashes[:at], bytes(changed), *hashes[at + 1 :]]


def _mangled(hashes: list[bytes], extra: bytes) -> list[list[bytes]]:
    """Truncated, extended and reordered copies of a proof."""
    out = [[*hashes, extra], [extra, *hashes], [*hashes, bytes(32)], [*hashes, *hashes]]
    if hashes:
        out += [hashes[:-1], hashes[1:], [hashes[0], *hashes], [*hashes, hashes[-1]]]
        out += [[*hashes[:1], SOME_HASH, *hashes[1:]]]
    if len(hashes) > 1:
        out += [hashes[::-1], [*hashes[1:], hashes[0]]]
    return [m for m in out if m != hashes]


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_every_inclusion_proof_matches_verifies_and_resists_tampering(size: int) -> None:
    root = mth(LEAVES[:size])
    alone = Tree.from_leaves(LEAVES[:size])
    for index in range(size):
        leaf = LEAVES[index]
        got = SMALL_TREE.inclusion_proof(index, size)
        assert got == path(index, LEAVES[:size]) == alone.inclusion_proof(index)
        assert root_from_inclusion(leaf, index, size, got) == root
        assert verify_inclusion(leaf, index, size, got, root)
        # Same-size wrong indices never verify: distinct leaves have distinct paths.
        for other in range(-1, size + 2):
            if other != index:
                assert not inclusion_claim_holds((other, size), (index, size))
                assert not verify_inclusion(leaf, other, size, got, root)
        # Other sizes verify exactly when their proof has the same shape.
        others = {0, 1, size - 1, size + 1, size * 2, size // 2, 2 * size - 1, 2 * size + 1}
        if size <= 32:
            others |= set(range(70))
        for other in others - {size}:
            holds = inclusion_claim_holds((index, other), (index, size))
            assert verify_inclusion(leaf, index, other, got, root) is holds
        for at in range(len(got)):
            for bit in (0, 3, 100, 255):
                assert not verify_inclusion(leaf, index, size, _flipped(got, at, bit), root)
        for bit in (0, 7, 255):
            assert not verify_inclusion(_flipped([leaf], 0, bit)[0], index, size, got, root)
            assert not verify_inclusion(leaf, index, size, got, _flipped([root], 0, bit)[0])
        for wrong in _mangled(got, root):
            assert not verify_inclusion(leaf, index, size, wrong, root)
        assert not verify_inclusion(leaf, index, size, got, EMPTY_ROOT)
        assert not verify_inclusion(leaf, index, size, [*got, b""], root)
        assert not verify_inclusion(leaf, index, size, [b"", *got], root)


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_every_consistency_proof_matches_verifies_and_resists_tampering(size: int) -> None:
    root = mth(LEAVES[:size])
    alone = Tree.from_leaves(LEAVES[:size])
    assert alone.consistency_proof(size) == []
    assert verify_consistency(size, size, root, root, [])
    assert not verify_consistency(size, size, root, root, [root])
    for old_size in range(1, size):
        old_root = mth(LEAVES[:old_size])
        got = SMALL_TREE.consistency_proof(old_size, size)
        assert got == proof(old_size, LEAVES[:size]) == alone.consistency_proof(old_size)
        assert verify_consistency(old_size, size, old_root, root, got)
        truth = (old_size, size)
        claims = {(old_size + d1, size + d2) for d1 in (-1, 0, 1) for d2 in (-1, 0, 1)} | {
            (old_size ^ 2, size),
            (old_size, size * 2),
            (old_size, size // 2),
        }
        if size <= 20:
            claims |= {(m, n) for n in range(42) for m in range(n + 1)}
        for claim_old, claim_new in claims - {truth}:
            holds = consistency_claim_holds((claim_old, claim_new), truth)
            assert verify_consistency(claim_old, claim_new, old_root, root, got) is holds
        assert not verify_consistency(old_size, size, root, old_root, got)
        assert not verify_consistency(old_size, size, old_root, old_root, got)
        assert not verify_consistency(old_size, size, old_root, root, [])
        for at in range(len(got)):
            for bit in (0, 4, 100, 255):
                assert not verify_consistency(
                    old_size, size, old_root, root, _flipped(got, at, bit)
                )
        for bit in (0, 255):
            wrong_old = _flipped([old_root], 0, bit)[0]
            assert not verify_consistency(old_size, size, wrong_old, root, got)
            wrong_new = _flipped([root], 0, bit)[0]
            assert not verify_consistency(old_size, size, old_root, wrong_new, got)
        for wrong in [*_mangled(got, old_root), *_mangled(got, root)]:
            assert not verify_consistency(old_size, size, old_root, root, wrong)


# --- Larger, random shapes ---------------------------------------------------------------------


@cache
def _reference_tree(size: int) -> Tree:
    return Tree.from_leaves(LEAVES[:size])


@settings(max_examples=40, deadline=None)
@given(size=st.integers(65, len(LEAVES)), data=st.data())
def test_random_larger_trees_match_the_reference(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1), label="index")
    old_size = data.draw(st.integers(1, size), label="old_size")
    tree = _reference_tree(size)
    leaves = LEAVES[:size]
    root, old_root = mth(leaves), mth(LEAVES[:old_size])
    assert tree.root() == root
    assert SMALL_TREE.root() == mth(LEAVES[:SMALL])
    assert _reference_tree(len(LEAVES)).root(size) == root
    got = tree.inclusion_proof(index)
    assert got == path(index, leaves)
    assert _reference_tree(len(LEAVES)).inclusion_proof(index, size) == got
    assert verify_inclusion(leaves[index], index, size, got, root)
    assert not verify_inclusion(leaves[index], index ^ 1, size, got, root)
    consistency = tree.consistency_proof(old_size)
    assert consistency == (proof(old_size, leaves) if old_size < size else [])
    assert verify_consistency(old_size, size, old_root, root, consistency)
    if consistency:
        assert not verify_consistency(old_size, size, old_root, root, consistency[:-1])
    builder = RootBuilder()
    for leaf in leaves:
        builder.add(leaf)
    assert builder.root() == root


# --- Malformed input ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(-3, 2**70),
    size=st.integers(-3, 2**70),
    hashes=st.lists(st.binary(min_size=0, max_size=40), max_size=80),
    leaf=st.binary(min_size=0, max_size=40),
)
def test_verifiers_only_ever_answer_false_to_garbage(
    index: int, size: int, hashes: list[bytes], leaf: bytes
) -> None:
    assert verify_inclusion(leaf, index, size, hashes, SOME_HASH) is False
    assert verify_consistency(index, size, leaf, SOME_HASH, hashes) is False


def test_verifiers_refuse_wrong_types() -> None:
    with pytest.raises(TypeError):
        verify_inclusion(LEAVES[0], 0.0, 1, [], LEAVES[0])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_consistency(1, "2", LEAVES[0], LEAVES[1], [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify_inclusion(LEAVES[0], 0, 2, ["x" * 32], LEAVES[0])  # type: ignore[list-item]


def test_tree_refuses_bad_arguments() -> None:
    tree = Tree.from_leaves(LEAVES[:5])
    with pytest.raises(ValueError, match="32 bytes"):
        tree.append(b"short")
    with pytest.raises(ValueError, match="32 bytes"):
        Tree.from_leaves([LEAVES[0], LEAVES[1] + b"x"])
    with pytest.raises(ValueError, match="32 bytes"):
        RootBuilder().add(bytes(33))
    for bad in (-1, 6):
        with pytest.raises(ValueError, match="outside"):
            tree.root(bad)
        with pytest.raises(ValueError, match="outside"):
            tree.inclusion_proof(bad)
        with pytest.raises(IndexError):
            tree.leaf(bad if bad < 0 else 5)
    with pytest.raises(ValueError, match="outside"):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError, match="non-empty"):
        tree.consistency_proof(0, 5)
    with pytest.raises(ValueError, match="no consistency proof"):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError, match="outside"):
        tree.consistency_proof(4, 6)
    assert tree.consistency_proof(0, 0) == []
    assert Tree().root() == EMPTY_ROOT


def test_leaves_are_copied_in() -> None:
    # Typed as bytes, but a caller's reusable buffer must not alias the stored hashes.
    leaf = bytearray(LEAVES[0])
    tree, builder = Tree(), RootBuilder()
    tree.append(leaf)  # type: ignore[arg-type]
    builder.add(leaf)  # type: ignore[arg-type]
    leaf[0] ^= 1
    assert tree.root() == builder.root() == LEAVES[0]


def test_importable_without_sqlalchemy() -> None:
    code = "import sys, channelflow.audit.merkle; print('sqlalchemy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


@pytest.mark.slow
def test_a_million_leaves() -> None:
    size = 1_000_003
    leaves = [event_leaf(hashlib.sha256(i.to_bytes(4, "big")).hexdigest()) for i in range(size)]
    tree = Tree.from_leaves(leaves)
    builder = RootBuilder()
    grown = Tree()
    for leaf in leaves:
        builder.add(leaf)
        grown.append(leaf)
    root = tree.root()
    assert builder.root() == grown.root() == root
    for index in (0, 1, 524_287, 524_288, 999_999, size - 1):
        assert verify_inclusion(leaves[index], index, size, tree.inclusion_proof(index), root)
    for old_size in (1, 3, 524_288, 777_777, size - 1):
        assert verify_consistency(
            old_size, size, tree.root(old_size), root, grown.consistency_proof(old_size)
        )
