"""Fuzzing the Avro codec: any bytes decode or raise SchemaError, never anything else, and
no length written in the bytes makes the decoder allocate it; any record a caller builds
is checked (SchemaError naming a field) or encodes and reads back the same."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.contract.codec import HEADER_LEN, MARKER, default_codec
from ledger.contract.facts import to_record
from ledger.errors import SchemaError
from ledger.intake.decode import intake_fact
from tests.support.hostile import hostile_facts, mutated_encodings, zigzag

CODEC = default_codec()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
HEADERS = [MARKER + version.fingerprint for version in CODEC.versions]


def decodes_or_refuses(data: bytes) -> dict[str, Any] | None:
    """The record the codec and the intake decoder read from `data`, or None if both refuse
    it with a SchemaError and a reason; anything else fails the test."""
    try:
        _, record = CODEC.decode(data)
    except SchemaError as error:
        assert str(error)
        with pytest.raises(SchemaError):
            intake_fact(data, CODEC)
        return None
    try:
        intake_fact(data, CODEC)
    except SchemaError as error:  # the intake also refuses what the ledger does not take
        assert str(error)
    return record


@settings(max_examples=200)
@given(st.sampled_from(HEADERS), st.binary(max_size=120))
def test_any_body_after_a_known_header_decodes_or_is_a_schema_error(header: bytes, body: bytes) -> None:
    decodes_or_refuses(header + body)


@settings(max_examples=200)
@given(mutated_encodings())
def test_a_mutated_encoding_decodes_or_is_a_schema_error(data: bytes) -> None:
    record = decodes_or_refuses(data)
    if record is not None:
        assert set(record) >= {"event_id", "customer_id", "occurred_at"}


@settings(max_examples=100)
@given(st.binary(max_size=64))
def test_any_bytes_at_all_are_refused_by_the_intake_with_a_reason(data: bytes) -> None:
    decodes_or_refuses(data)


@pytest.mark.parametrize("length", [2**31, 2**60, 2**63 - 1, -(2**60)])
@pytest.mark.parametrize("header", HEADERS[:3], ids=lambda h: h[HEADER_LEN - 8:].hex()[:8])
def test_a_huge_length_prefix_is_refused_without_allocating_it(header: bytes, length: int) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(SchemaError, match="corrupt body"):
            CODEC.decode(header + zigzag(length) + b"x" * 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@pytest.mark.parametrize("count", [2**31, 2**60, -(2**60)])
def test_a_huge_array_count_is_refused_without_allocating_it(count: int) -> None:
    fact = {"type": "PurchaseMade", "customer_id": "C1", "occurred_at": "2026-05-01T09:30:00Z",
            "source": "s", "order_id": "O1", "channel": "web", "currency": "EUR",
            "total_minor": 1}
    without_lines = CODEC.encode(*to_record(fact, NOW))
    assert without_lines.endswith(b"\x00")  # `lines`, the last field, is null: branch 0
    data = without_lines[:-1] + b"\x02" + zigzag(count) + zigzag(4)
    tracemalloc.start()
    try:
        with pytest.raises(SchemaError, match="corrupt body"):
            CODEC.decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@settings(max_examples=200)
@given(hostile_facts())
def test_any_fact_is_refused_with_a_reason_or_encodes_and_reads_back(fact: dict[str, Any]) -> None:
    try:
        event_type, record = to_record(fact, NOW)
        CODEC.check(event_type, record)
    except SchemaError as error:
        assert str(error)
        return
    decoded_type, decoded = CODEC.decode(CODEC.encode(event_type, record))
    assert decoded_type == event_type
    assert decoded["customer_id"] == record["customer_id"]
    assert decoded["occurred_at"] == record["occurred_at"]
