"""Embedded or Kafka: decided once, from the settings, and asked of this one object.

Embedded (no Kafka bootstrap servers): facts go into the store and the projector follows the
store's notification log, so a command that records brings the read models up to date
itself, and `serve` runs the projector alone. Kafka: the relay publishes the store's log to
the ledger topic, the intake records what adapters publish, and projectors follow the ledger
topic; a command that records leaves projecting to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.settings import Settings
from ledger.write.application import Ledger
from ledger.write.log import NotificationLogSource, Source

PART_NAMES = ("relay", "intake", "projector")
"""The long-running parts of `ledger serve`, in the order they start."""


@dataclass(frozen=True)
class Deployment:
    settings: Settings

    @property
    def uses_kafka(self) -> bool:
        return bool(self.settings.kafka)

    @property
    def mode(self) -> str:
        return "kafka" if self.uses_kafka else "embedded"

    @property
    def projects_after_recording(self) -> bool:
        """Whether a command that records should project too (nobody else will, embedded)."""
        return not self.uses_kafka

    @property
    def parts(self) -> tuple[str, ...]:
        """What `ledger serve` runs: the relay and intake only have work with Kafka."""
        return PART_NAMES if self.uses_kafka else ("projector",)

    def source(self, ledger: Ledger | None = None) -> Source:
        """Where projectors read events: the ledger topic, or the store's log."""
        if self.uses_kafka:
            from ledger.kafka.source import KafkaSource

            return KafkaSource(self.settings)
        return NotificationLogSource(ledger or Ledger(self.settings))
