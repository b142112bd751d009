"""How many decimals each currency's minor unit has (ISO 4217's "minor unit", its exponent).

`amount_minor` means minor units of its currency, and minor units differ: 1 JPY has none
(exponent 0), 1 EUR has 100 cents (2), 1 BHD has 1,000 fils (3). Converting an amount into
another currency needs both exponents, or a yen order would count a hundred times too much.

The exponents come from the `iso4217` package, a copy of ISO's own published table, rather
than from Babel/CLDR, whose "digits" are those a locale shows and differ from ISO's for some
codes (CLDR gives IQD 0 decimals, ISO 3). ISO's current table no longer lists codes withdrawn
since `CURRENCIES` was written; events may still carry them, so their exponents are kept here
from ISO 4217's list of historic codes.
"""

from __future__ import annotations

from iso4217 import Currency

WITHDRAWN = {"ANG": 2, "BGN": 2, "CUC": 2, "SLL": 2, "ZWL": 2}
"""Codes in `rules.CURRENCIES` that ISO has withdrawn (list three, historic), with their
exponent as it was."""


def minor_unit_exponent(code: str) -> int | None:
    """The exponent of `code`'s minor unit (2 for EUR: 1 EUR = 10**2 cents); None if ISO 4217
    gives it none (gold, SDR, testing codes) or does not know the code."""
    if code in WITHDRAWN:
        return WITHDRAWN[code]
    try:
        exponent = Currency(code).exponent
    except ValueError:
        return None
    return exponent if isinstance(exponent, int) else None
