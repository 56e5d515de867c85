"""Layout 2's order, split block by block when read (``_blocks.Texts``).

A fresh registry at 10,000 versions creates a few hundred strings at the open rather
than one per version; the container must behave as the list it stands for under every
change a state makes (a replayed save appends; a lower version inserts; a delete), and
a copy (the stored order, a ``versions()`` listing) must not see later changes.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelversions import IntegrityError, ModelRegistry, _blocks
from modelversions._texts import pack, unpack
from modelversions.backends.memory import MemoryBackend


def _texts(n: int, block: int) -> tuple[_blocks.Texts, list[str]]:
    plain = [f"1.{i}.0" for i in range(n)]
    chunks = [" ".join(plain[i : i + block]) for i in range(0, n, block)]
    return _blocks.Texts.parse(chunks, block, n, "snapshot"), plain


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 10**6)),
        st.tuples(st.just("insert"), st.integers(-50, 50)),
        st.tuples(st.just("delete"), st.integers(-50, 50)),
        st.tuples(st.just("copy"), st.just(0)),
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 40), block=st.integers(1, 9), ops=_ops, probe=st.integers(-60, 60))
def test_texts_behave_as_the_list_they_stand_for(
    n: int, block: int, ops: list[tuple[str, int]], probe: int
) -> None:
    texts, plain = _texts(n, block)
    copies: list[tuple[Any, list[str]]] = []
    for op, arg in ops:
        if op == "append":
            texts.insert(len(texts), f"2.{arg}.0")
            plain.insert(len(plain), f"2.{arg}.0")
        elif op == "insert":
            texts.insert(arg, f"3.{arg}.0")
            plain.insert(arg, f"3.{arg}.0")
        elif op == "delete" and plain and -len(plain) <= arg < len(plain):
            del texts[arg]
            del plain[arg]
        elif op == "copy":
            copies.append((texts.copy(), list(plain)))
        assert len(texts) == len(plain)
    assert list(texts) == plain and texts == plain
    assert texts[1:-1] == plain[1:-1]
    if -len(plain) <= probe < len(plain):
        assert texts[probe] == plain[probe]
    else:
        with pytest.raises(IndexError):
            texts[probe]
    for twin, then in copies:  # a copy keeps what it was given
        assert list(twin) == then


@pytest.mark.parametrize(
    ("chunks", "block", "n"),
    [
        (["1.0.0 1.1.0"], 2, 3),  # too few blocks for 3 versions
        ("1.0.0 1.1.0", 2, 2),  # not a list
        ([1], 2, 1),  # not a string
        (["1.0.0"], 0, 1),  # no block size
        (["1.0.0"], True, 1),
    ],
)
def test_a_damaged_order_is_refused_at_the_open(chunks: Any, block: Any, n: int) -> None:
    with pytest.raises(IntegrityError, match="damaged index"):
        _blocks.Texts.parse(chunks, block, n, "snapshot")


@pytest.mark.parametrize("chunk", ["1.0.0", "1.0.0 1.1.0 1.2.0", "1.0.0  1.1.0"])
def test_a_block_of_the_wrong_length_is_refused_when_read(chunk: str) -> None:
    texts = _blocks.Texts.parse(["1.0.0 1.1.0", chunk], 2, 4, "snapshot")
    assert texts[0] == "1.0.0"  # the first block is sound
    with pytest.raises(IntegrityError, match=r"damaged index \(block 1\)"):
        texts[2]


def test_a_fresh_open_splits_only_the_blocks_it_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_blocks, "BLOCK", 4)
    backend = MemoryBackend()
    reg = ModelRegistry(backend)
    for i in range(64):
        reg.save("m", i)
    reg.mark_stable("m", "1.63.0")
    reg.deploy("m", "1.63.0")
    fresh = ModelRegistry(backend)
    assert str(fresh.current("m").version) == "1.63.0"  # type: ignore[union-attr]
    state = fresh._log.states["m"]
    order = state.order.texts
    assert isinstance(order, _blocks.Texts)
    assert len(order._split) <= 4  # a bisection's few blocks, of 16
    assert list(fresh.versions("m")) == list(ModelRegistry(backend).versions("m"))
    assert [str(v) for v in state.order] == [f"1.{i}.0" for i in range(64)]


# -- the packed order: runs of like bumps ------------------------------------------

_BUMPS = {"M": lambda a, b, c: (a + 1, 0, 0), "m": lambda a, b, c: (a, b + 1, 0)}
_BUMPS["p"] = lambda a, b, c: (a, b, c + 1)


@st.composite
def _orders(draw: st.DrawFn) -> list[str]:
    """Versions as saves make them: runs of one bump, other bumps, pre-releases."""
    parts = (draw(st.integers(0, 3)), draw(st.integers(0, 12)), draw(st.integers(0, 3)))
    out: list[str] = []
    for kind, length in draw(
        st.lists(st.tuples(st.sampled_from("MmpX"), st.integers(1, 9)), max_size=12)
    ):
        for _ in range(length):
            if kind == "X":
                out.append(f"{parts[0]}.{parts[1]}.{parts[2]}-rc.{len(out)}")
            else:
                parts = _BUMPS[kind](*parts)
                out.append(f"{parts[0]}.{parts[1]}.{parts[2]}")
    return out


@settings(max_examples=300)
@given(names=_orders())
def test_a_packed_block_unpacks_to_its_versions(names: list[str]) -> None:
    chunk = pack(names)
    assert unpack(chunk, len(names)) == names if names else chunk == ""
    assert len(chunk) <= len(" ".join(names))
    with pytest.raises(ValueError):
        unpack(chunk, len(names) + 1)


def test_automatic_saves_pack_to_one_token_per_block() -> None:
    names = [f"1.{i}.0" for i in range(64)]
    assert pack(names) == "1.0.0*64m"
    assert pack(["2.0.0", "2.0.1", "2.0.2", "2.1.0"]) == "2.0.0*3p 2.1.0"
    assert pack(["1.0.0", "1.1.0"]) == "1.0.0 1.1.0"  # runs of 3 or more


@pytest.mark.parametrize(
    "chunk",
    [
        "1.0.0*999999m",  # longer than the block: never expanded
        "1.0.0*2m 1.2.0 1.3.0",  # a run shorter than 3 is not written so
        "1.0.0*4x",  # no such bump
        "01.0.0*4m",  # not a version's canonical text
        "1.0.0*04m",
        "1.0.0*4m*",
        "1.0.0 * 1.1.0 1.2.0",
        "1" * 30 + ".0.0*4m",  # numbers past what a run may hold
    ],
)
def test_a_hostile_run_is_refused_before_it_is_expanded(chunk: str) -> None:
    with pytest.raises(ValueError):
        unpack(chunk, 4)
    texts = _blocks.Texts.parse([chunk], 4, 4, "snapshot")
    with pytest.raises(IntegrityError, match=r"damaged index \(block 0\)"):
        texts[0]


def test_a_run_may_start_right_after_a_short_one() -> None:
    names = ["1.0.0", "1.1.0", "1.1.1", "1.1.2", "1.1.3"]
    assert pack(names) == "1.0.0 1.1.0*4p"
    assert unpack(pack(names), 5) == names
