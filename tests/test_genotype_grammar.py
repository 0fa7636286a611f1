"""Printing and parsing are exact inverses over the whole language the parser accepts.

The strings come from the genotype grammar itself (any word order, defaults written out,
numbers in every form the grammar allows: leading zeros, long fractions, exponents, values far
out of range), not from samples of a space: whatever ``Arch.parse`` accepts must print as a
canonical string that parses back to the same ``Arch`` and prints the same; whatever it
refuses must be refused with a ``GenotypeError``, never another exception.
"""

from __future__ import annotations

from hypothesis import find, given, settings
from hypothesis import strategies as st

from nas.errors import GenotypeError
from nas.genotype import ACTIVATIONS, DOWNSAMPLES, PADDINGS, PARTITIONS, Arch

digits = st.text("0123456789", min_size=1, max_size=6)


def mostly(valid, wild, n: int = 6):
    """Draw from ``valid`` about n times in n + 1 (hypothesis has no weights: repeat it)."""
    return st.one_of(*([valid] * n), wild)


#: Integers as written: mostly in range, sometimes with leading zeros, out of range or absurdly long.
wild_integers = st.one_of(st.integers(0, 5000).map(str), digits, st.integers(1, 3).map(lambda n: "9" * (400 * n)))
channels = mostly(st.sampled_from(["16", "24", "32", "40", "016", "0032"]), wild_integers)
small = mostly(st.sampled_from(["1", "2", "01"]), wild_integers)
#: Numbers as the grammar writes them: N, N.F, NeE, N.Fe-E (F up to 20 digits).
wild_numbers = st.one_of(
    st.floats(0, 20, allow_nan=False).map(repr).filter(lambda t: "e+" not in t and "inf" not in t),
    st.tuples(digits, st.text("0123456789", min_size=1, max_size=20)).map(lambda p: f"{p[0]}.{p[1]}"),
    st.tuples(digits, st.booleans(), st.integers(0, 400)).map(lambda p: f"{p[0]}e{'-' if p[1] else ''}{p[2]}"),
)
expansions = mostly(st.sampled_from(["1", "3", "6", "6.0", "2.5", "1.0000000000000002", "3.00000000000000000001",
                                     "4.123456789012345", "6e0", "25e-1"]), wild_numbers)
ratios = mostly(st.sampled_from(["0", "0.25", "0.5", "0.123456789", "1e-3", "1", "25e-2"]), wild_numbers)


def names(valid: tuple[str, ...]):
    return mostly(st.sampled_from(valid), st.text("abcfz", min_size=1, max_size=4))


kernels = mostly(st.lists(st.sampled_from(["3", "5", "7", "9", "11", "03"]), min_size=1, max_size=3),
                 st.lists(st.one_of(st.sampled_from(["1", "31", "33", "4"]), wild_integers), min_size=1, max_size=9))


@st.composite
def block_words(draw) -> str:
    kind = draw(st.sampled_from(["ir", "ds"]))
    words = [f"k{'.'.join(draw(kernels))}", f"c{draw(channels)}"]
    optional = {
        "e": lambda: f"e{draw(expansions)}",
        "s": lambda: f"s{draw(small)}",
        "d": lambda: f"d{draw(small)}",
        "g": lambda: f"g{draw(small)}.{draw(small)}",
        "se": lambda: f"se{draw(ratios)}",
        "r": lambda: f"r{draw(small)}",
        "split": lambda: f"split={draw(names(PARTITIONS))}",
        "pad": lambda: f"pad={draw(names(PADDINGS))}",
        "down": lambda: f"down={draw(names(DOWNSAMPLES))}",
        "act": lambda: f"act={draw(names(ACTIVATIONS))}",
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        words.append(optional[key]())
    return " ".join([kind] + draw(st.permutations(words)))


@st.composite
def genotypes(draw) -> str:
    stem = ["stem", f"c{draw(channels)}"] + draw(st.lists(st.sampled_from([f"s{draw(small)}", f"act={draw(names(ACTIVATIONS))}"]),
                                                           unique=True, max_size=2))
    stages = [", ".join(draw(st.lists(block_words(), min_size=1, max_size=3))) for _ in range(draw(st.integers(1, 4)))]
    head = ["head", f"c{draw(mostly(st.sampled_from(['0', '256', '00']), wild_integers))}"]
    head += [f"act={draw(names(ACTIVATIONS))}"] if draw(st.booleans()) else []
    return " | ".join([" ".join(stem)] + stages + [" ".join(head)])


def _accepted(text: str) -> Arch | None:
    try:
        return Arch.parse(text)
    except GenotypeError:
        return None


def test_the_grammar_strategy_reaches_accepted_non_canonical_strings() -> None:
    """The round-trip property is not vacuous: the strategy generates strings the parser
    accepts though they are not canonical (reordered words, defaults written out, 016)."""
    def non_canonical(text: str) -> bool:
        arch = _accepted(text)
        return arch is not None and str(arch) != text and len(arch.stages) > 1

    found = find(genotypes(), non_canonical, settings=settings(max_examples=5000, database=None))
    assert Arch.parse(str(Arch.parse(found))) == Arch.parse(found)


@settings(max_examples=600, deadline=None)
@given(text=genotypes())
def test_every_accepted_string_prints_to_a_canonical_string_that_parses_back_exactly(text: str) -> None:
    try:
        arch = Arch.parse(text)
    except GenotypeError:
        return  # refused with a message: allowed; any other exception fails the test
    canonical = str(arch)
    again = Arch.parse(canonical)
    assert again == arch, (text, canonical)
    assert str(again) == canonical


@settings(max_examples=300, deadline=None)
@given(value=st.floats(min_value=1e-12, max_value=16, allow_nan=False, exclude_min=False))
def test_any_expansion_in_range_round_trips_bit_for_bit(value: float) -> None:
    arch = Arch.parse(f"stem c16 | ir k3 e{value!r} c16 | head c0".replace("e+", "e"))
    assert Arch.parse(str(arch)) == arch
    assert arch.stages[0][0].expansion == float(repr(value).replace("e+", "e"))


def test_a_value_normalisation_drops_is_still_validated() -> None:
    try:
        Arch.parse("stem c16 | ir k3 c16 split=fib | head c0")
    except GenotypeError as exc:
        assert "split" in str(exc) and "fib" in str(exc)
    else:
        raise AssertionError("split=fib on a single-kernel block was accepted")


def test_more_digits_than_the_old_printer_kept_survive_the_round_trip() -> None:
    arch = Arch.parse("stem c16 | ir k3 e6.1234567 c16 se0.123456789 | head c0")
    assert str(arch) == "stem c16 | ir k3 e6.1234567 c16 se0.123456789 | head c0"
