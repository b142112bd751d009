"""The rules every fact must keep, whoever sends it: checked by the ledger before recording
and by the SDK before sending.

Pure: no I/O, no clock (the caller passes `now`). A fact is ``(event_type, record)`` where
`record` is the Avro record of that type, envelope included.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any

from ledger.errors import ValidationError

SCORE_RANGES = {"csat": (1, 5), "nps": (0, 10), "ces": (1, 7)}
MAX_CUSTOMER_ID_LEN = 200
MAX_TEXT_LEN = 10_000
MAX_QUANTITY = 10**9
MAX_DURATION_S = 10 * 365 * 86400
"""Amounts may be anything Avro's long holds: the read models sum them in HUGEINT, which
no number of such amounts can overflow. Quantities and durations have sane limits."""
MAX_LANGUAGE_LEN = 35
"""The longest language tag BCP 47 (RFC 5646, 4.4.1) asks implementations to keep."""

# ISO 4217 active codes (2024), plus the precious-metal and testing codes left out on purpose.
CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD
    BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD
    EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR
    ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD
    MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR
    PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL
    THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF
    XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL""".split()
)

_NON_NEGATIVE = {
    "PurchaseMade": ("total_minor",),
    "PurchaseRefunded": ("amount_minor",),
    "ContactLogged": ("duration_s",),
}
_CURRENCY_FIELDS = {"PurchaseMade", "PurchaseRefunded"}


_IGNORABLE = frozenset(
    [0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0, *range(0x180B, 0x1810), *range(0xFE00, 0xFE10)]
)
"""Default-ignorable code points outside category Cf (a combining grapheme joiner, Hangul
fillers, variation selectors): invisible, so an id holding one looks like one without."""


_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2,3}|[xXiI])(-[A-Za-z0-9]{1,8})*")
"""A plausible BCP 47 tag: an ISO 639 language code of two or three letters (or ``x``/``i``
for private and old tags), then subtags of letters and digits (``en``, ``pt-BR``,
``zh-Hant-TW``, ``es-419``). Not checked against the registry: a tag it lacks still reads as a
language to an analyst, while ``English`` or ``pt_BR`` would split a group."""


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Unicode's control characters (category Cc), all of them."""


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) == "Cf" or ord(ch) in _IGNORABLE or 0xE0100 <= ord(ch) <= 0xE01EF


def normal_customer_id(value: Any) -> Any:
    """A customer id as the ledger keeps it: without invisible characters (zero-width spaces,
    bidi marks, joiners, fillers), in one Unicode form (NFKC: a full-width ``Ｃ１`` is ``C1``,
    ``e`` and a combining accent are ``é``), without white space at either end. Ids that differ
    only in these are one customer, so an erased customer cannot come back as ``"C1 "``.

    Normalising a normal id gives it back unchanged: the invisible characters go before NFKC
    composes what they separated. Anything but a string is left for the checks."""
    if not isinstance(value, str):
        return value
    if not value.isascii():
        value = "".join(ch for ch in value if not _invisible(ch))
        value = unicodedata.normalize("NFKC", value)
        value = "".join(ch for ch in value if not _invisible(ch))  # NFKC can make one (rarely)
    return value.strip()


def check_customer_id(customer_id: Any) -> None:
    """ValidationError unless `customer_id` (normalised) can be a customer's id: text, not
    empty, not too long, without control characters (a NUL, a line break, NEL inside it)."""
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise ValidationError("customer_id", "must not be empty (white space and invisible characters do not count)")
    if len(customer_id) > MAX_CUSTOMER_ID_LEN:
        raise ValidationError("customer_id", f"longer than {MAX_CUSTOMER_ID_LEN} characters")
    control = _CONTROL.search(customer_id)
    if control is not None:
        raise ValidationError("customer_id", f"must not contain control characters (U+{ord(control[0]):04X})")


def check_rules(event_type: str, record: dict[str, Any], now: datetime, max_future: timedelta) -> None:
    """Raise ValidationError for the first domain rule `record` breaks."""
    if record.get("sealed") is not None:
        raise ValidationError("sealed", "is written by the ledger only (it seals the personal fields itself); "
                                        "send the personal fields in clear, over a protected connection")
    check_customer_id(record.get("customer_id"))
    if not record.get("source"):
        raise ValidationError("source", "must not be empty")
    for name in ("source", "source_event_id"):  # kept as text in the store's index of event ids
        if "\x00" in (record.get(name) or ""):
            raise ValidationError(name, "must not contain a NUL character (U+0000)")
    if record["occurred_at"] > now + max_future:
        raise ValidationError(
            "occurred_at", f"{record['occurred_at'].isoformat()} is more than {max_future} in the future"
        )
    for name in _NON_NEGATIVE.get(event_type, ()):
        value = record.get(name)
        if value is not None and value < 0:
            raise ValidationError(name, f"must not be negative, got {value}")
        if name == "duration_s" and value is not None and value > MAX_DURATION_S:
            raise ValidationError(name, f"must be at most {MAX_DURATION_S:,} (ten years), got {value:,}")
    if event_type in _CURRENCY_FIELDS:
        currency = record["currency"]
        if currency not in CURRENCIES:
            hint = " (codes are upper case)" if currency.upper() in CURRENCIES else ""
            raise ValidationError("currency", f"{currency!r} is not an ISO 4217 code{hint}")
    if event_type == "PurchaseMade":
        for i, line in enumerate(record.get("lines") or ()):
            if line["quantity"] <= 0:
                raise ValidationError(f"lines[{i}].quantity", f"must be positive, got {line['quantity']}")
            if line["quantity"] > MAX_QUANTITY:
                raise ValidationError(f"lines[{i}].quantity", f"must be at most {MAX_QUANTITY:,}")
            if line["unit_price_minor"] < 0:
                raise ValidationError(f"lines[{i}].unit_price_minor", "must not be negative")
        _check_lines_sum(record)
    if event_type == "FeedbackGiven":
        low, high = SCORE_RANGES[record["kind"]]
        if not low <= record["score"] <= high:
            raise ValidationError(
                "score", f"{record['kind']} score must be {low} to {high}, got {record['score']}"
            )
    if event_type == "ContactLogged":
        _check_contact_extras(record)
    if event_type in ("CustomerRegistered", "ProfileUpdated"):
        country = record.get("country")
        if country is not None and not (len(country) == 2 and country.isascii() and country.isupper()):
            raise ValidationError("country", f"{country!r} is not an ISO 3166 alpha-2 code")
    _check_text_lengths(record)


def _check_contact_extras(record: dict[str, Any]) -> None:
    """A contact's language and sentiment (v3) are grouped and compared by analysts' SQL: a
    language that is no tag, or a score outside the scale, would split a group or skew an
    average without anyone noticing, so they are refused at the door."""
    language = record.get("language")
    if language is not None and not (len(language) <= MAX_LANGUAGE_LEN and _LANGUAGE_TAG.fullmatch(language)):
        raise ValidationError("language", f"{language[:40]!r} is not a BCP 47 language tag such as 'en' or 'pt-BR'")
    sentiment = record.get("sentiment")
    if sentiment is not None and (isinstance(sentiment, bool) or not -1.0 <= sentiment <= 1.0):
        raise ValidationError("sentiment", f"must be a number from -1.0 to 1.0, got {sentiment!r}")


def _check_lines_sum(record: dict[str, Any]) -> None:
    """An order's lines, when it lists them, are the whole of it: a total that differs from
    them would make revenue by sku and revenue by order disagree, and no one could say which
    is right. Both numbers are named so the sender can see which side is wrong. An order sent
    without lines (a shop that reports totals only) has nothing to check."""
    lines = record.get("lines") or ()
    if not lines:
        return
    summed = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
    if summed != record["total_minor"]:
        raise ValidationError(
            "total_minor", f"lines sum to {summed:,}, total_minor is {record['total_minor']:,}; "
            "the lines (quantity x unit_price_minor) must add up to the total"
        )


def _check_text_lengths(record: dict[str, Any]) -> None:
    """Every text of a fact (ids, free text, attributes' keys and values, a line's sku) is at
    most MAX_TEXT_LEN characters: larger ones are refused by name, not left for the event
    size limit to catch as a whole."""
    for name, value in record.items():
        if isinstance(value, str):
            _check_length(name, value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                _check_length(f"{name}: a key", key)
                _check_length(f"{name}[{key[:40]!r}]", inner)
        elif isinstance(value, list):
            for i, line in enumerate(value):
                for key, inner in (line.items() if isinstance(line, dict) else ()):
                    _check_length(f"{name}[{i}].{key}", inner)


def _check_length(where: str, value: Any) -> None:
    if isinstance(value, str) and len(value) > MAX_TEXT_LEN:
        raise ValidationError(where, f"longer than {MAX_TEXT_LEN} characters ({len(value)})")


