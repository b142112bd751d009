"""The ledger's three topics, created here and only when an operator's command asks.

`ledger topics create`, `ledger serve` and `ledger relay` create them; nothing else does, so
a command that only reads (``status --kafka``, ``dlq list``) leaves the cluster as it found
it. Everything else checks that a topic exists and, if not, says which command creates it:
some brokers create a topic for any producer that sends to it (Tansu does, whatever the
client asks), with none of the settings below.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaConnectionError, KafkaTimeoutError, TopicAlreadyExistsError
from kafka.errors import KafkaError as ClientError

from ledger.errors import KafkaError
from ledger.settings import Settings

FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
DEAD_LETTERS = {**FOREVER, "max.message.bytes": str(2 * 1024 * 1024)}
"""A dead letter is an intake record (up to the broker's 1 MB default) plus headers."""


class MissingTopicError(KafkaError):
    """A topic the ledger reads or writes has not been created."""

    def __init__(self, topic: str, settings: Settings):
        super().__init__(f"no topic {topic!r} on {settings.kafka}: run `ledger topics create` first")
        self.topic = topic


@dataclass(frozen=True)
class Topic:
    name: str
    role: str
    configs: Mapping[str, str]


def ledger_topics(settings: Settings) -> list[Topic]:
    return [
        Topic(settings.kafka.ledger_topic, "ledger", FOREVER),
        Topic(settings.kafka.intake_topic, "intake", FOREVER),
        Topic(settings.kafka.dlq_topic, "dead letters", DEAD_LETTERS),
    ]


def create(settings: Settings) -> dict[str, bool]:
    """Create whichever of the ledger's topics do not exist; {name: True if created now}."""
    with _admin(settings) as admin:
        found = set(admin.list_topics())
        made: dict[str, bool] = {}
        for topic in ledger_topics(settings):
            made[topic.name] = topic.name not in found
            if not made[topic.name]:
                continue
            new = NewTopic(
                topic.name,
                num_partitions=settings.kafka.partitions,
                replication_factor=settings.kafka.replication_factor,
                topic_configs=dict(topic.configs),
            )
            try:
                admin.create_topics([new])
            except TopicAlreadyExistsError:
                made[topic.name] = False  # another process created it meanwhile
        return made


def existing(settings: Settings) -> set[str]:
    with _admin(settings) as admin:
        return set(admin.list_topics())


def require(settings: Settings, name: str) -> None:
    if name not in existing(settings):
        raise MissingTopicError(name, settings)


def unreachable(settings: Settings, exc: ClientError, client: str = "a client") -> KafkaError:
    """The error of a client that could not even bootstrap: the servers, the time given, and
    what to check, rather than kafka-python's own words alone."""
    if isinstance(exc, KafkaTimeoutError | KafkaConnectionError):
        return KafkaError(
            f"cannot reach Kafka at {settings.kafka} within {settings.kafka.timeout_s:g} s (LEDGER_KAFKA_TIMEOUT): "
            "is the broker up and the address right?"
        )
    return KafkaError(f"cannot connect {client} to Kafka at {settings.kafka}: {exc}")


@contextmanager
def _admin(settings: Settings) -> Iterator[KafkaAdminClient]:
    try:
        admin = KafkaAdminClient(**settings.kafka.client_options())
    except ClientError as exc:
        raise unreachable(settings, exc, "an admin client") from exc
    try:
        yield admin
    except ClientError as exc:
        raise KafkaError(f"managing topics on {settings.kafka} failed: {exc!r}") from exc
    finally:
        admin.close()
