"""Events as older versions of the ledger and of adapters wrote them: a codec that knows a
type only up to some version, and single-object bytes made by plain fastavro from a shipped
.avsc file, as an adapter in any language would."""

from __future__ import annotations

import io
import json
from importlib import resources
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from ledger.contract.codec import MARKER, Codec, default_codec
from ledger.settings import Settings
from ledger.write.application import Ledger
from tests.support.facts import CLOCK, T0, fact


def codec_before(event_type: str, version: int) -> Codec:
    """The shipped codec with `event_type` only up to `version`: the ledger as it was before
    the next version shipped, writing `version`'s bytes."""
    return Codec([v for v in default_codec().versions if v.event_type != event_type or v.version <= version])


def adapter_bytes(file_name: str, record: dict[str, Any]) -> bytes:
    """`record` in Avro single-object encoding under the schema file `file_name`, written by
    fastavro alone: the marker, the CRC-64-AVRO fingerprint of the parsing canonical form,
    then the body."""
    schema = fastavro.parse_schema(json.loads(resources.files("ledger.schemas").joinpath(file_name).read_text()))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return MARKER + bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO")) + body.getvalue()


def record_with_every_version(settings: Settings) -> None:
    """A contact written by the ledger before v2 (OLD1), one before v3 (OLD2), and a v3 one
    with language and sentiment (NEW3): the store holds bytes of each version."""
    for version, customer in ((1, "OLD1"), (2, "OLD2"), (3, "NEW3")):
        ledger = Ledger(settings, clock=lambda: CLOCK, codec=codec_before("ContactLogged", version))
        extra = {"language": "pt-BR", "sentiment": -0.6} if version == 3 else {}
        assert ledger.record(fact("ContactLogged", customer, T0, **extra)).status == "recorded"
        ledger.close()
