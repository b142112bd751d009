"""Hypothesis strategies for input built to break the door: JSON-like values a parser lets
through (huge integers, NaN, lone surrogates, timestamps at the calendar's ends, deep
nesting) laid over valid facts, and Avro bytes mutated from valid encodings."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from hypothesis import strategies as st

from ledger.contract.codec import default_codec
from ledger.contract.facts import to_record

CODEC = default_codec()
WHEN = "2026-05-01T09:30:00Z"

VALID: dict[str, dict[str, Any]] = {
    "CustomerRegistered": {"name": "Ada", "country": "GB", "birth_date": "1990-12-10",
                           "attributes": {"tier": "gold"}},
    "ProfileUpdated": {"city": "London"},
    "ConsentChanged": {"purpose": "marketing_email", "granted": True},
    "ContactLogged": {"contact_id": "K1", "channel": "phone", "direction": "inbound",
                      "duration_s": 60},
    "PurchaseMade": {"order_id": "O1", "channel": "web", "currency": "EUR", "total_minor": 1999,
                     "lines": [{"sku": "A", "quantity": 1, "unit_price_minor": 1999}]},
    "PurchaseRefunded": {"order_id": "O1", "currency": "EUR", "amount_minor": 500},
    "FeedbackGiven": {"kind": "nps", "score": 9, "channel": "email", "comment": "fine"},
    "CustomerErased": {},
}


def valid_fact(event_type: str, n: int) -> dict[str, Any]:
    """A valid fact of `event_type` as JSON carries it, with source_event_id ``v<n>``."""
    return {"type": event_type, "customer_id": f"C{n % 7}", "occurred_at": WHEN,
            "source": "fuzz", "source_event_id": f"v{n}", **VALID[event_type]}


EDGE_INTS = st.sampled_from([0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63,
                             -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**30)])
SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
CONTROL = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=3)
HOSTILE_TEXT = st.one_of(
    st.text(max_size=12),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=4), SURROGATES, st.text(max_size=4)),
    CONTROL,
    st.sampled_from(["", " ", "\u0000", "\ufeff", "NaN", "1e400", "\u202e", "a" * 300]),
)
YEARS = st.sampled_from([1, 2, 1899, 1900, 1970, 2026, 2199, 2200, 9998, 9999])
OFFSETS = st.sampled_from(["Z", "+00:00", "+01:00", "-01:00", "+23:59", "-23:59", "", "+24:00"])
TIMESTAMPS = st.builds(
    lambda year, month, day, offset: f"{year:04d}-{month:02d}-{day:02d}T23:59:59{offset}",
    YEARS, st.integers(1, 13), st.integers(0, 31), OFFSETS,
)
DATES = st.builds(lambda year, rest: f"{year:04d}-{rest}", YEARS,
                  st.sampled_from(["01-01", "12-31", "02-29", "13-01", "00-00"]))
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), EDGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True), HOSTILE_TEXT, TIMESTAMPS, DATES,
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(HOSTILE_TEXT, inner, max_size=3)
    ),
    max_leaves=8,
)


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def hostile_facts(draw: st.DrawFn, n: int = 0) -> dict[str, Any]:
    """A valid fact with some fields replaced, removed or added, by hostile values."""
    event_type = draw(st.sampled_from(sorted(VALID)))
    fact = valid_fact(event_type, n)
    names = sorted(CODEC.newest(event_type).field_names | {"type"})
    field_names = st.one_of(st.sampled_from(names), HOSTILE_TEXT)
    for _ in range(draw(st.integers(1, 4))):
        name = draw(field_names)
        choice = draw(st.integers(0, 9))
        if choice == 0:
            fact.pop(name, None)
        elif choice == 1:
            fact[name] = nested(draw(st.integers(1, 200)))
        else:
            fact[name] = draw(VALUES)
    return fact


def as_json_line(fact: dict[str, Any]) -> bytes:
    """The fact as an adapter writes it: ASCII JSON, so lone surrogates are \\uXXXX escapes,
    and NaN or Infinity literals where a float is not finite."""
    return json.dumps(fact, allow_nan=True).encode("ascii")


@cache
def valid_encodings() -> list[bytes]:
    """One valid single-object encoding per event type."""
    now = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)
    out = []
    for n, event_type in enumerate(sorted(VALID)):
        checked_type, record = to_record(valid_fact(event_type, n), now)
        out.append(CODEC.encode(checked_type, record))
    return out


def zigzag(n: int) -> bytes:
    """An Avro long (zig-zag varint); any size, so it can also be one Avro cannot hold."""
    n = (n << 1) if n >= 0 else ((-n) << 1) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


@st.composite
def mutated_encodings(draw: st.DrawFn) -> bytes:
    """A valid encoding with a few bytes flipped, cut, inserted, or a huge length or count
    written where the body begins."""
    data = bytearray(draw(st.sampled_from(valid_encodings())))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(10, len(data)))
        kind = draw(st.integers(0, 4))
        if kind == 0 and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == 1:
            del data[at:at + draw(st.integers(1, 8))]
        elif kind == 2:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == 3:
            data[at:at] = zigzag(draw(st.sampled_from([2**31, 2**60, -(2**60), 2**63 - 1, 2**70])))
        else:
            del data[at:]
    return bytes(data)
