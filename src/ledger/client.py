"""The SDK's first home, kept so that adapters written against ``ledger.client`` still work.

The SDK lives in ledger.intake.client now; import from there.
"""

from ledger.intake.client import Delivery, LedgerClient

__all__ = ["Delivery", "LedgerClient"]
