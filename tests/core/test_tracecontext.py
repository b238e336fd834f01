"""The ``statefun-origins`` header: one origin per invocation, compact, bounded."""

from __future__ import annotations

from statefun_core.tracecontext import (
    MAX_ORIGINS_LENGTH,
    decode_origins,
    encode_origins,
    is_traceparent,
)

A = f"00-{'a' * 32}-{'1' * 16}-01"
B = f"00-{'b' * 32}-{'2' * 16}-00"


def test_runs_are_counted_and_unknown_origins_are_empty() -> None:
    origins = [A, A, A, None, B, None, None]
    value = encode_origins(origins)
    assert value == f"3*{A},,{B}"  # the unknown ones at the end are left out
    assert decode_origins(value, len(origins)) == origins


def test_a_run_of_unknown_origins() -> None:
    assert encode_origins([None, None, A]) == f"2*,{A}"
    assert decode_origins(f"2*,{A}", 3) == [None, None, A]
    assert encode_origins([None, None]) == ""


def test_the_value_stops_before_the_limit_and_the_rest_is_unknown() -> None:
    origins = [f"00-{i:032x}-{'1' * 16}-01" for i in range(1, 200)]
    value = encode_origins(origins)
    assert len(value) <= MAX_ORIGINS_LENGTH
    decoded = decode_origins(value, len(origins))
    listed = value.count(",") + 1
    assert decoded[:listed] == origins[:listed]
    assert decoded[listed:] == [None] * (len(origins) - listed)


def test_malformed_entries_are_unknown_and_counts_are_bounded() -> None:
    assert decode_origins(f"nonsense,{A}", 2) == [None, A]
    assert decode_origins(f"x*{A}", 2) == [None, None]
    assert decode_origins(f"\u00b2*{A}", 2) == [None, None]  # a digit to isdigit, not to int
    assert decode_origins(f"99*{A}", 2) == [A, A]  # never more than the batch holds
    assert decode_origins("", 1) == [None]


def test_a_count_of_any_length_is_read() -> None:
    # Python refuses to convert a string of over 4300 digits to an int
    assert decode_origins(f"{'9' * 5000}*{A}", 2) == [A, A]
    assert decode_origins(f"{'0' * 5000}1*{A},{B}", 2) == [A, B]
    assert decode_origins(f"0*{A},{B}", 2) == [B, None]


def test_is_traceparent() -> None:
    assert is_traceparent(A) and is_traceparent(B)
    assert not is_traceparent(f"00-{'0' * 32}-{'1' * 16}-01")  # an invalid trace id
    assert not is_traceparent(f"00-{'a' * 32}-{'0' * 16}-01")  # an invalid parent id
    assert not is_traceparent(f"ff-{'a' * 32}-{'1' * 16}-01")  # a forbidden version
    assert not is_traceparent(A.upper())
    assert not is_traceparent(A + "-")


def test_a_single_unknown_origin_at_the_end_is_left_out() -> None:
    assert encode_origins([A, None]) == A
    assert encode_origins([A, None, None, None]) == A


def origins_of_length(length: int) -> list[str | None]:
    """Origins whose value is ``length`` characters: distinct entries (55 characters and a
    comma each), then unknown ones between the first entries (a comma each)."""
    entries = (length + 1) // 56
    gaps = length - (56 * entries - 1)
    origins: list[str | None] = []
    for i in range(1, entries + 1):
        origins.append(f"00-{i:032x}-{'1' * 16}-01")
        if i <= gaps:
            origins.append(None)
    return origins


def test_a_value_of_exactly_4096_characters_is_whole_and_one_more_drops_the_last_entry() -> None:
    whole = origins_of_length(4096)
    assert len(encode_origins(whole)) == 4096 == MAX_ORIGINS_LENGTH
    assert decode_origins(encode_origins(whole), len(whole)) == whole
    longer = origins_of_length(4097)
    value = encode_origins(longer)
    assert value == encode_origins(longer[:-1])  # the last entry would pass the limit
    assert decode_origins(value, len(longer)) == [*longer[:-1], None]


def test_a_run_after_other_entries_is_bounded_by_the_invocations_left() -> None:
    assert decode_origins(f"{A},99*{B}", 3) == [A, B, B]
