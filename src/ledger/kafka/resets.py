"""Noticing that a topic went backwards or disappeared.

A topic can lose what it held without anyone writing to it: deleted and recreated, emptied,
a cluster rebuilt without its data (the test broker, which keeps everything in memory, does
this on every restart). Offsets stored against it then point past its end, or at other
records. Kafka's documented behaviour gives the signs, each checked here on the high
watermark (the end offset a Fetch reports; see `clients.high_watermarks`):

- the topic is not in the cluster's metadata: gone;
- a partition's end offset is below an offset Kafka acknowledged before: gone backwards
  (the end never moves down; retention moves the start offset, not the end);
- every partition ends at 0 although events were published to it: emptied.

A reset seen once is looked at again after a pause before anything acts on it: while a
partition's leader moves, the new leader may report a high watermark a little behind for a
moment, and a false reset costs a full republish or rebuild.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

from ledger.errors import TopicResetError
from ledger.kafka.clients import consumer, high_watermarks, partitions_of
from ledger.kafka.topics import MissingTopicError, existing
from ledger.settings import Settings


def topic_ends(settings: Settings, topic: str) -> dict[int, int] | None:
    """Each partition's end offset, or None when the topic does not exist.

    Existence is asked of the topic list first: some brokers (Tansu) create a topic for any
    client that asks for its partitions, which would hide that it was gone."""
    if topic not in existing(settings):
        return None
    client = consumer(settings, group_id=None)
    try:
        partitions = partitions_of(client, topic, settings)
    except MissingTopicError:
        return None
    finally:
        client.close()
    return high_watermarks(settings, partitions)


def reset_reason(
    topic: str, ends: Mapping[int, int] | None, acked: Mapping[int, int], *, published: bool
) -> str | None:
    """Why `topic` was reset, or None if it was not.

    `acked`: per partition, the end offset Kafka's acknowledgements proved (last offset + 1);
    `published`: whether any event was published to it (so that an empty topic means lost).
    """
    if ends is None:
        return f"topic {topic!r} does not exist any more"
    behind = {p: (ends.get(p), end) for p, end in sorted(acked.items()) if ends.get(p, 0) < end}
    if behind:
        shown = ", ".join(
            f"partition {p} ends at {'(gone)' if now is None else now}, below offset {end - 1} Kafka acknowledged"
            for p, (now, end) in behind.items()
        )
        return f"topic {topic!r} went backwards: {shown}"
    if published and not acked and ends and not any(ends.values()):
        return f"topic {topic!r} holds no records, although events were published to it"
    return None


def confirmed(find: Callable[[], str | None], confirm_s: float, stop: threading.Event | None = None) -> str | None:
    """`find()`'s reason `confirm_s` from now (a reset seen once, looked at again)."""
    if confirm_s > 0:
        if stop is not None:
            stop.wait(confirm_s)
        else:
            time.sleep(confirm_s)
    return find()


def reset_error(topic: str, reason: str, **details: object) -> TopicResetError:
    """A TopicResetError whose attributes say what was seen (`topic`, and `details`)."""
    error = TopicResetError(reason)
    error.topic = topic  # type: ignore[attr-defined]
    for name, value in details.items():
        setattr(error, name, value)
    return error
