"""Amending the books: correcting or retracting a fact, merging two customer ids, undoing it.

Every amendment is a new event (see ledger.contract.amendments); nothing recorded is ever
changed. What each may do is decided here, where the store can be read: a correction or a
retraction names a fact of the same customer that is still in force, a corrected fact keeps
every rule a new one keeps, and a merge never makes a cycle (a customer is merged only into
one that is not merged itself, so the read models' chains end).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from ledger.contract.amendments import amendable, changes_text, given_value, read_changes
from ledger.contract.codec import Codec
from ledger.contract.facts import event_id_for
from ledger.contract.rules import check_rules, normal_customer_id
from ledger.errors import InputError, LedgerError, ValidationError
from ledger.write.domain import Customer, Recorded, customer_uuid

CLI_SOURCE = "ledger-cli"
"""The source of what operators record with the ledger's own commands (amendments, erasures)."""

Fact = tuple[str, dict[str, Any]]
CustomerOf = Callable[[str], Customer]


class Amending:
    """The Ledger's amendments (mixed into write.application.Ledger)."""

    codec: Codec
    recorder: Any
    mapper: Any
    clock: Callable[[], datetime]
    record: Callable[[Mapping[str, Any]], Any]
    customer: Callable[[str], Customer | None]

    # The commands: plain data in, an Outcome out (LedgerError when refused).

    def correct(self, event_id: str, changes: Mapping[str, Any], reason: str | None, actor: str | None = None) -> Any:
        """Record a FactCorrected of `event_id` setting `changes` (field -> value)."""
        event_type, target, earlier = self._stored_target(str(event_id))
        return self._amend("FactCorrected", target["customer_id"], _after(self.clock(), earlier), reason, actor,
                           target_event_id=str(event_id), target_type=event_type, changes=changes_text(dict(changes)))

    def retract(self, event_id: str, reason: str | None, actor: str | None = None) -> Any:
        """Record a FactRetracted of `event_id`."""
        event_type, target, earlier = self._stored_target(str(event_id))
        return self._amend("FactRetracted", target["customer_id"], _after(self.clock(), earlier), reason, actor,
                           target_event_id=str(event_id), target_type=event_type)

    def merge(self, survivor_id: str, merged_id: str, reason: str | None, actor: str | None = None) -> Any:
        """Count `merged_id` as `survivor_id` from now on (recorded on the merged customer)."""
        return self._amend("CustomersMerged", merged_id, self.clock(), reason, actor, survivor_id=survivor_id)

    def split(self, merged_id: str, reason: str | None, actor: str | None = None) -> Any:
        """Undo the merge of `merged_id`: it is a customer of its own again."""
        customer = self.customer(normal_customer_id(merged_id)) if isinstance(merged_id, str) else None
        if customer is None or customer.merged_into is None:
            raise ValidationError("customer_id", f"{merged_id!r} is not merged into another customer")
        return self._amend("CustomerSplit", merged_id, self.clock(), reason, actor,
                           survivor_id=customer.merged_into, target_event_id=customer.merge_event_id)

    def _amend(self, event_type: str, customer_id: str, at: datetime, reason: str | None, actor: str | None,
               **fields: Any) -> Any:
        return self.record({"type": event_type, "customer_id": customer_id, "occurred_at": at, "source": CLI_SOURCE,
                            "reason": reason, "actor": actor, **fields})

    @staticmethod
    def parse_settings(assignments: list[str]) -> dict[str, Any]:
        """``["score=9", "channel=phone"]`` as {"score": 9, "channel": "phone"}; InputError
        naming an assignment without ``=``."""
        changes: dict[str, Any] = {}
        for item in assignments:
            name, sep, text = item.partition("=")
            if not sep or not name.strip():
                raise InputError(f"--set {item!r}: write FIELD=VALUE, e.g. --set score=9")
            changes[name.strip()] = given_value(text)
        return changes

    # Deciding: called by Ledger._decide for each amendment, before it is applied.

    def _check_amendment(self, event_type: str, record: dict[str, Any], customer: Customer,
                         customer_of: CustomerOf, in_batch: dict[str, Fact], now: datetime,
                         max_future: timedelta) -> None:
        if event_type in ("CustomersMerged", "CustomerSplit"):
            self._check_merge(event_type, record, customer, customer_of)
            return
        verb = "corrected" if event_type == "FactCorrected" else "retracted"
        target_id = str(record["target_event_id"])
        if target_id in in_batch:
            (target_type, target), earlier = in_batch[target_id], []
        else:
            target_type, target, earlier = self._stored_target(target_id)
        earlier += [r for t, r in in_batch.values()
                    if t in ("FactCorrected", "FactRetracted") and str(r["target_event_id"]) == target_id]
        if target["customer_id"] != record["customer_id"]:
            raise ValidationError("target_event_id", f"event {target_id} is about customer "
                                                     f"{target['customer_id']!r}, not {record['customer_id']!r}")
        if record["target_type"] != target_type:
            raise ValidationError("target_type", f"event {target_id} is a {target_type}, not a {record['target_type']}")
        amendable(target_type, verb)
        if target_id in customer.retracted:
            raise ValidationError("target_event_id", f"event {target_id} was retracted already")
        latest = max((r["occurred_at"] for r in earlier), default=None)
        if latest is not None and record["occurred_at"] <= latest:
            # The read models take a field's latest correction by occurred_at: the ledger keeps
            # that order the order it records them in, so both agree on which one counts.
            raise ValidationError("occurred_at", f"must be after the previous amendment of event {target_id} "
                                                 f"({latest.isoformat()})")
        if event_type == "FactCorrected":
            values = read_changes(target_type, record["changes"])
            current = dict(target)
            for prior in sorted(earlier, key=lambda r: r["occurred_at"]):  # the fact as now corrected
                if "changes" in prior:
                    current.update(read_changes(target_type, prior["changes"]))
            corrected = {**current, **values}
            corrected.pop("sealed", None)  # the personal fields are not checked again: they cannot change
            self.codec.check(target_type, corrected)
            check_rules(target_type, corrected, now, max_future)
            record["changes"] = changes_text(values)

    def _check_merge(self, event_type: str, record: dict[str, Any], merged: Customer, customer_of: CustomerOf) -> None:
        survivor_id = normal_customer_id(record["survivor_id"])
        record["survivor_id"] = survivor_id
        me = record["customer_id"]
        if merged.version == 0:
            raise ValidationError("customer_id", f"no customer {me!r} is recorded")
        if event_type == "CustomerSplit":
            if merged.merged_into != survivor_id:
                now_in = f"merged into {merged.merged_into!r}" if merged.merged_into else "not merged"
                raise ValidationError("survivor_id", f"{me!r} is {now_in}, not into {survivor_id!r}")
            if str(record["target_event_id"]) != merged.merge_event_id:
                raise ValidationError("target_event_id", f"the merge in force of {me!r} is {merged.merge_event_id}")
            return
        if survivor_id == me:
            raise ValidationError("survivor_id", "a customer cannot be merged into itself")
        if merged.merged_into is not None:
            raise ValidationError("customer_id",
                                  f"{me!r} is merged into {merged.merged_into!r} already; split it first")
        survivor = customer_of(survivor_id)
        if survivor.version == 0:
            raise ValidationError("survivor_id", f"no customer {survivor_id!r} is recorded")
        if survivor.erased:
            raise ValidationError("survivor_id", f"customer {survivor_id!r} is erased")
        shared = sorted(set(merged.orders) & set(survivor.orders))
        if shared:
            raise ValidationError("customer_id", f"{me!r} and {survivor_id!r} both have order {shared[0]!r}: one "
                                                 "person's order ids must be distinct; retract one of them first")
        if survivor.merged_into is not None:
            raise ValidationError("survivor_id", f"{survivor_id!r} is merged into {survivor.merged_into!r}; "
                                                 f"merge into {survivor.merged_into!r} instead")

    def _stored_target(self, event_id: str) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        """The recorded fact `event_id` (its record as stored: personal fields sealed), and the
        amendments of it recorded so far."""
        found = self.recorder.find([event_id], []) if "\x00" not in event_id else []
        if not found:
            raise ValidationError("target_event_id", f"no event {event_id[:80]!r} is recorded")
        target: Fact | None = None
        earlier: list[dict[str, Any]] = []
        for stored in self.recorder.select_events(customer_uuid(found[0][1])):
            event = self.mapper.to_domain_event(stored)
            if not isinstance(event, Recorded):
                continue
            if str(event.record["event_id"]) == event_id:
                target = (event.event_type, dict(event.record))
            elif event.event_type in ("FactCorrected", "FactRetracted") and \
                    str(event.record["target_event_id"]) == event_id:
                earlier.append(event.record)
        if target is None:
            raise LedgerError(f"event {event_id} is in the index of event ids but not in its customer's history")
        return target[0], target[1], earlier

    def group_of(self, customer_id: str, survivor: dict[str, str] | None = None) -> list[str]:
        """Every customer id counted as the same person as `customer_id` now: the root of its
        merges and every id merged into that root, directly or through another."""
        survivor = self._merged_now() if survivor is None else survivor

        def root(cid: str) -> str:
            seen = {cid}
            while cid in survivor and survivor[cid] not in seen:
                cid = survivor[cid]
                seen.add(cid)
            return cid

        top = root(customer_id)
        return [top, *sorted(c for c in survivor if c != top and root(c) == top)]

    def _merged_now(self) -> dict[str, str]:
        """Each customer id merged now -> the id it is merged into (a scan of the store's merges)."""
        merges: dict[str, dict[str, Any]] = {}
        undone: set[str] = set()
        for data in self.recorder.events_of_types(("CustomersMerged", "CustomerSplit")):
            event_type, record = self.codec.decode(data)
            if event_type == "CustomerSplit":
                undone.add(str(record["target_event_id"]))
            else:
                merges[str(record["event_id"])] = record
        return {r["customer_id"]: r["survivor_id"] for i, r in merges.items() if i not in undone}

    def _with_group_erasures(self, facts: list[Fact]) -> list[Fact]:
        """`facts`, then a CustomerErased for every other id of a merged person one of them
        erases, whatever door it came through: one person is erased whole. Decided in the same
        turn as the erasure, so no merge can slip in between."""
        erasing = [r for t, r in facts if t == "CustomerErased" and isinstance(r.get("customer_id"), str)]
        if not erasing:
            return facts
        survivor = self._merged_now()
        if not survivor:
            return facts
        extra: list[Fact] = []
        named = {normal_customer_id(r["customer_id"]) for r in erasing}
        for record in erasing:
            cid = normal_customer_id(record["customer_id"])
            for other in self.group_of(cid, survivor):
                known = self.customer(other) if other not in named else None
                if known is None or known.erased:
                    continue
                named.add(other)
                key = f"{record.get('source_event_id') or record['event_id']}/with:{other}"
                extra.append(("CustomerErased", {**record, "customer_id": other, "source_event_id": key,
                                                 "event_id": str(event_id_for(record["source"], key))}))
        return facts + extra


def _after(now: datetime, earlier: list[dict[str, Any]]) -> datetime:
    """`now`, or just after the latest of `earlier` amendments if the clock is not past it."""
    latest = max((r["occurred_at"] for r in earlier), default=None)
    return now if latest is None or now > latest else latest + timedelta(microseconds=1)


__all__ = ["CLI_SOURCE", "Amending"]
