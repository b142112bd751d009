"""A realistic, deterministic customer history for ``ledger demo``.

Pure: no I/O, no wall clock, no global random state. The same ``(customers, seed, end,
years)`` always yields the same facts, each with a stable ``(source, source_event_id)``, so
re-running the demo only produces duplicates. Facts come mostly in ``occurred_at`` order, but
~1% of purchases arrive late, as real adapters deliver them. Behaviour profiles (loyal,
one-off, lapsed, reactivated, new, prospect) make every lifecycle stage occur at `end`, and
about three customers in four hold profiling consent then, so RFM scores most of them.

It is worth charting: seasons, weekdays and hours per channel (`demo_calendar`); CSAT, NPS
and CES after contacts and orders of every channel, lower after complaints; a churn wave (some
customers stop buying after a bad experience) and a campaign that brings lapsed ones back.

It holds what the insight models look for (docs/insight.md): loyal customers who fade before
they leave, often after a complaint, and accessories bought with their item (demo_tables.py).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.ops import demo_calendar as cal
from ledger.ops import demo_tables as tab

CRM, WEBSHOP, POS = "crm", "webshop", "pos"
CALLCENTRE, HELPDESK, SURVEY = "callcentre", "helpdesk", "survey"
SOURCES = (CRM, WEBSHOP, POS, CALLCENTRE, HELPDESK, SURVEY)
"""The adapters the demo pretends to be; each numbers its own ``source_event_id``s."""

LATE_SHARE, ERASED_SHARE = 0.01, 0.01  # of purchases delivered late, of customers erased
DAY, SECOND = timedelta(days=1), timedelta(seconds=1)

# Share of customers per profile; when they registered and bought decides their stage at `end`.
PROFILES = {"loyal": 24, "one_off": 20, "lapsed": 15, "reactivated": 8, "new": 13, "prospect": 20}
REGISTERED_DAYS_AGO = {"loyal": (180, 900), "one_off": (100, 900), "lapsed": (420, 900),
                       "reactivated": (600, 900), "new": (1, 75), "prospect": (1, 900)}
PURCHASE_CHANNELS = {"web": 45, "app": 25, "store": 22, "phone": 8}
CONTACT_CHANNELS = {"phone": 30, "email": 24, "chat": 20, "store": 8, "social": 6, "app": 5,
                    "web": 4, "sms": 3}
REASONS = {"delivery": 25, "billing": 18, "returns": 15, "product_question": 30, "account": 12}
OUTBOUND_REASONS = ("follow_up", "retention_offer", "satisfaction_check", "appointment")
OUTBOUND_CHANNELS = {"phone": 5, "email": 4, "sms": 2}
MARKETING = (("marketing_email", "email"), ("marketing_sms", "sms"), ("marketing_phone", "phone"))
# Survey kind: (lowest, highest score, score of an average experience, noise). Responses follow
# contacts and orders of every channel; some channels are simply easier to deal with.
SURVEYS = {"csat": (1, 5, 4.3, 0.7), "ces": (1, 7, 5.6, 0.9), "nps": (0, 10, 8.0, 1.5)}
CONTACT_SURVEYS = {"csat": 0.2, "ces": 0.07, "nps": 0.05}  # response rates
ORDER_SURVEYS = {"csat": 0.06, "nps": 0.04, "ces": 0.03}
CHANNEL_EASE = {"store": 0.35, "app": 0.2, "chat": 0.15, "web": 0.05, "sms": 0.0, "email": -0.1,
                "phone": -0.25, "social": -0.6}
WAVE_SHARE = {"loyal": 0.35, "lapsed": 0.7}  # of those buying then, who stop in the churn wave
# Share of customers ticking each box at sign-up. Most agree to profiling, which RFM scores
# and profiling segments need; about a quarter end up without it (never given, or withdrawn).
CONSENTS = {"marketing_email": 0.6, "profiling": 0.9, "marketing_sms": 0.25, "marketing_phone": 0.1}


def generate(customers: int = 2000, seed: int = 7, end: datetime | None = None,
             years: float = 2.0) -> Iterator[dict[str, Any]]:
    """Fact dicts for `customers` customers over the `years` before `end` (aware UTC).

    Built eagerly (so a bad `end` fails at the call) and sorted by when adapters deliver them.
    """
    if end is None or end.tzinfo is None:
        raise ValueError("end must be an aware datetime: the demo never reads the clock")
    end = end.astimezone(UTC).replace(microsecond=0)
    rng = random.Random(seed)
    erased = set(rng.sample(range(1, customers + 1), round(customers * ERASED_SHARE)))
    keyed: list[tuple[tuple[datetime, int, int], dict[str, Any]]] = []
    for number in range(1, customers + 1):
        history = _History(rng, number, end - timedelta(days=365.25 * years), end)
        history.live(_pick(rng, PROFILES))
        if number in erased:
            history.erase()
        keyed.extend(history.keyed(late_ok=number not in erased))
    keyed.sort(key=lambda item: item[0])
    return (fact for _, fact in keyed)


def _purchase_weight(day: date) -> float:
    return cal.purchase_season(day) * cal.weekday_mix(day, PURCHASE_CHANNELS)


def _contact_weight(day: date) -> float:
    return cal.contact_season(day) * cal.weekday_mix(day, CONTACT_CHANNELS)


(PURCHASE_PEAK, PURCHASE_MEAN), (CONTACT_PEAK, _), (SEASON_PEAK, _) = (
    cal.peak_and_mean(w) for w in (_purchase_weight, _contact_weight, cal.purchase_season))


def _pick(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(tuple(weights), tuple(weights.values()))[0]


class _History:
    """One customer's life, built fact by fact; facts after `end` simply never happened."""

    def __init__(self, rng: random.Random, number: int, start: datetime, end: datetime):
        self.rng, self.start, self.end = rng, start, end
        self.wave, self.campaign_window = cal.churn_wave(end), cal.campaign(end)
        self.number, self.customer_id = number, f"C{number:06d}"
        self.country = _pick(rng, {c: v[0] for c, v in tab.COUNTRIES.items()})
        self.currency = tab.COUNTRIES[self.country][1]
        self.mood = rng.gauss(0, 1)  # a grumpy customer complains more and scores lower
        self.facts: list[dict[str, Any]] = []
        self.complaints: list[datetime] = []
        self.counters: dict[str, int] = {}
        self.leaving: datetime | None = None
        self.owed: set[str] = set()  # accessories the next order brings

    def _next(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return f"{kind}-{self.number:06d}-{self.counters[kind]:03d}"

    def _add(self, type_: str, at: datetime, source: str, key: str, **fields: Any) -> dict | None:
        if at > self.end:
            return None
        fact = {"type": type_, "customer_id": self.customer_id, "source": source,
                "occurred_at": at.replace(microsecond=0), "source_event_id": key, **fields}
        self.facts.append(fact)
        return fact

    def _between(self, lo: datetime, hi: datetime) -> datetime:
        seconds = max(0.0, (hi - lo).total_seconds())
        return lo + timedelta(seconds=int(self.rng.uniform(0, seconds)))

    def _window(self, lo_days: float, hi_days: float) -> tuple[datetime, datetime]:
        """From `hi_days` to `lo_days` before end, clamped to the demo's window."""
        span = (self.end - self.start) / DAY
        return self.end - min(hi_days, span) * DAY, self.end - min(lo_days, span) * DAY

    def _ago(self, lo_days: float, hi_days: float) -> datetime:
        return self._between(*self._window(lo_days, hi_days))

    def keyed(self, late_ok: bool) -> list[tuple[tuple[datetime, int, int], dict[str, Any]]]:
        """Sort keys: when the adapter delivers each fact (late for ~1% of purchases)."""
        out = []
        for seq, fact in enumerate(self.facts):
            delivered = fact["occurred_at"]
            if late_ok and fact["type"] == "PurchaseMade" and self.rng.random() < LATE_SHARE:
                delivered += self.rng.uniform(3, 30) * DAY
            out.append(((delivered, self.number, seq), fact))
        return out

    def live(self, profile: str) -> None:
        rng = self.rng
        registered = cal.shaped(rng, *self._window(*REGISTERED_DAYS_AGO[profile]),
                                cal.purchase_season, SEASON_PEAK)
        self.register(registered, profile)
        let_down = self._let_down(profile, registered)
        purchases = self._purchase_times(profile, registered, let_down)
        last_seen = purchases[-1] if purchases else registered + rng.uniform(20, 300) * DAY
        self.consents(registered, min(self.end, last_seen + 60 * DAY))
        back = self.campaign(profile, registered, purchases)
        if profile == "reactivated" and not back:  # came back on their own, recently
            back = sorted(self._ago(0, 80) for _ in range(rng.randint(1, 2)))
        purchases += back
        last_seen = purchases[-1] if purchases else last_seen
        engaged_until = min(self.end, last_seen + 60 * DAY)
        for at in purchases:
            self.purchase(at)
        if let_down is not None:
            self.contact(let_down, rng.choice(("delivery", "billing", "returns")), bad=True)
        if self.leaving is not None and rng.random() < 0.5:  # a last straw before leaving
            self.contact(self.leaving - rng.uniform(10, 60) * DAY, rng.choice(("delivery", "returns")), bad=True)
        expected = (engaged_until - registered) / DAY / 150 + 0.5  # one every five months
        reasons = REASONS if purchases else {"product_question": 3, "account": 1}
        for _ in range(int(expected * rng.uniform(0.3, 1.7) + rng.random())):
            at = cal.shaped(rng, registered + DAY, max(registered + DAY, engaged_until),
                            _contact_weight, CONTACT_PEAK)
            self.contact(at, _pick(rng, reasons))
        self.profile_updates(registered, engaged_until)
        if purchases:
            self.nps_surveys(registered, engaged_until)

    def _let_down(self, profile: str, registered: datetime) -> datetime | None:
        """When a customer caught by the churn wave has the experience that ends their buying."""
        start, stop = self.wave
        if registered > start - 60 * DAY or self.rng.random() >= WAVE_SHARE.get(profile, 0):
            return None
        return self._between(start, stop)

    def _purchase_times(self, profile: str, registered: datetime,
                        let_down: datetime | None) -> list[datetime]:
        first = registered + self.rng.uniform(1, 10) * DAY  # a later day than the sign-up
        if profile == "loyal":
            leaves = registered + self.rng.uniform(200, 1000) * DAY if self.rng.random() < tab.LEAVER_SHARE else None
            if leaves is None or let_down is not None and let_down < leaves:  # or the churn wave took them
                return self._series(first, let_down or self.end, mean_days=35)
            self.leaving = leaves
            return self._series(first, min(leaves, self.end), mean_days=35, fade=leaves < self.end)
        if profile == "lapsed":
            return self._series(first, max(first, let_down or self._ago(200, 520)), mean_days=45)
        if profile == "reactivated":
            return self._series(first, max(first, self._ago(500, 560)), mean_days=45)
        if profile in ("one_off", "new"):
            extra = self.rng.random() < 0.3
            return [first] + ([first + self.rng.uniform(5, 60) * DAY] if extra else [])
        return []  # prospect

    def _series(self, first: datetime, until: datetime, mean_days: float, fade: bool = False) -> list[datetime]:
        """Repeat purchases, one every 2 + `mean_days` days on average, busier in the season;
        with `fade`, the gaps grow to four times that over the FADE_DAYS before `until`.

        Thinning: candidates come `ratio` times as often and each day keeps its share of them.
        """
        rng, ratio = self.rng, PURCHASE_PEAK / PURCHASE_MEAN
        times, at = [first], first
        while True:
            left = (until - at) / DAY
            mean = mean_days * (1 + 3 * max(0.0, 1 - left / tab.FADE_DAYS)) if fade else mean_days
            if (at := at + (2 / ratio + rng.expovariate(ratio / mean)) * DAY) >= until:
                return times
            if rng.random() * PURCHASE_PEAK < _purchase_weight(at.date()):
                times.append(at)

    def campaign(self, profile: str, registered: datetime, purchases: list[datetime]) -> list[datetime]:
        """The marketing push reaches those who agreed to it; lapsed customers come back most."""
        start, stop = self.campaign_window
        channel = next((c for purpose, c in MARKETING if self._holds(purpose, start)), None)
        if registered > start - 30 * DAY or channel is None or not purchases:
            return []
        contact = self.contact(start + self.rng.uniform(0, 7) * DAY, "campaign", channel=channel)
        before = [at for at in purchases if at < start]
        lapsed = bool(before) and start - before[-1] > 180 * DAY
        rate = 0.85 if profile == "reactivated" else 0.3 if lapsed else 0.1
        if contact is None or self.rng.random() >= rate:
            return []
        return [self._between(contact["occurred_at"] + DAY, stop)]

    def _holds(self, purpose: str, at: datetime) -> bool:
        changes = sorted((f["occurred_at"], f["granted"]) for f in self.facts
                         if f["type"] == "ConsentChanged" and f["purpose"] == purpose
                         and f["occurred_at"] <= at)
        return bool(changes) and changes[-1][1]

    def register(self, at: datetime, profile: str) -> None:
        rng, cities = self.rng, tab.COUNTRIES[self.country][3]
        first, last = rng.choice(tab.FIRST), rng.choice(tab.LAST)
        tiers = ("gold", "silver") if profile == "loyal" else ("bronze", "bronze", "silver")
        fields: dict[str, Any] = {
            "name": f"{first} {last}", "email": self._email(first, last), "phone": self._phone(),
            "country": self.country, "city": rng.choice(cities),
            "attributes": {"tier": rng.choice(tiers),
                           "signup_channel": _pick(rng, PURCHASE_CHANNELS)},
        }
        if rng.random() < 0.9:
            fields["birth_date"] = (self.end - rng.uniform(18, 80) * 365 * DAY).date().isoformat()
        self._add("CustomerRegistered", at, CRM, self._next("reg"), **fields)

    def _email(self, first: str, last: str) -> str:
        local = f"{first}.{last}{self.rng.randint(1, 999)}".lower().replace(" ", "")
        return f"{local}@{self.rng.choice(('example.com', 'example.org', 'example.net'))}"

    def _phone(self) -> str:
        code = tab.COUNTRIES[self.country][2]
        return f"{code} {self.rng.randint(100, 999)} {self.rng.randint(100000, 999999)}"

    def consents(self, registered: datetime, until: datetime) -> None:
        """Opt-ins at sign-up; some are withdrawn or granted later, as real preferences drift."""
        for purpose, rate in CONSENTS.items():
            granted = self.rng.random() < rate
            if granted:  # ticked on the sign-up form, a few minutes after registering
                self._add("ConsentChanged", registered + self.rng.uniform(60, 600) * SECOND, CRM,
                          self._next("consent"), purpose=purpose, granted=True)
            if self.rng.random() < (0.2 if granted else 0.08):
                self._add("ConsentChanged", self._between(registered + DAY, until), CRM,
                          self._next("consent"), purpose=purpose, granted=not granted)

    def profile_updates(self, registered: datetime, until: datetime) -> None:
        """Only the fields that changed are sent, as the CRM does."""
        rng = self.rng
        changes = (lambda: {"phone": self._phone()},
                   lambda: {"city": rng.choice(tab.COUNTRIES[self.country][3])},
                   lambda: {"attributes": {"tier": rng.choice(("silver", "gold"))}},
                   lambda: {"name": f"{rng.choice(tab.FIRST)} {rng.choice(tab.LAST)}"},
                   lambda: {"email": self._email(rng.choice(tab.FIRST), rng.choice(tab.LAST))})
        for _ in range(rng.choices((0, 1, 2), (55, 33, 12))[0]):
            self._add("ProfileUpdated", self._between(registered + DAY, until), CRM,
                      self._next("profile"), **rng.choice(changes)())

    def purchase(self, at: datetime) -> None:
        rng = self.rng
        channel = cal.pick_channel(rng, PURCHASE_CHANNELS, at.date())
        at = cal.time_of_day(rng, at, channel)
        skus = rng.sample(tuple(tab.CATALOGUE), rng.randint(1, 4))
        skus += [sku for sku, (item, _, rate) in tab.ACCESSORIES.items()
                 if sku in self.owed or rng.random() < (rate if item in skus else tab.ACCESSORY_ALONE)]
        self.owed = {sku for sku, (item, _, _) in tab.ACCESSORIES.items()  # come back for it next time
                     if item in skus and sku not in skus and rng.random() < tab.ACCESSORY_LATER}
        lines = [{"sku": sku, "quantity": rng.choices((1, 2, 3), (75, 20, 5))[0],
                  "unit_price_minor": int(tab.PRICES[sku] * tab.FX[self.currency]) // 100 * 100 + 99}
                 for sku in skus]
        total = sum(line["quantity"] * line["unit_price_minor"] for line in lines)
        order_id = self._next("ORD")
        source = POS if channel == "store" else WEBSHOP
        order = self._add("PurchaseMade", at, source, order_id, order_id=order_id,
                          channel=channel, currency=self.currency, total_minor=total, lines=lines)
        if order is None:
            return
        followup = None  # a contact about the order
        if rng.random() < 0.3:
            reason = rng.choice(("delivery", "delivery", "billing", "returns"))
            followup = self.contact(at + rng.uniform(1, 20) * DAY, reason)
        gifts = at.month in (11, 12)  # Christmas presents come back in January
        refunded = rng.random() < (0.11 if gifts else 0.05) and self.refund(order, source)
        for kind, rate in ORDER_SURVEYS.items():
            if rng.random() < rate:  # at the till, or once the parcel has arrived
                sent = at + rng.uniform(0.01, 0.2 if channel == "store" else 8) * DAY
                penalty = 0.5 * bool(refunded) + (0 if followup is None or followup["occurred_at"] > sent
                                                  else 1.5 if followup["is_complaint"] else 0.5)
                self.survey(sent, kind, penalty, channel, order_id=order_id)

    def refund(self, order: dict[str, Any], source: str) -> dict | None:
        """Full refunds, or one returned line; never more than the order was worth."""
        line = self.rng.choice(order["lines"])
        full = len(order["lines"]) == 1 or self.rng.random() < 0.5
        amount = order["total_minor"] if full else line["unit_price_minor"]
        return self._add("PurchaseRefunded", order["occurred_at"] + self.rng.uniform(3, 35) * DAY,
                         source, self._next("refund"), order_id=order["order_id"],
                         currency=order["currency"], amount_minor=amount,
                         reason=self.rng.choice(tab.REFUND_REASONS))

    def contact(self, at: datetime, reason: str, bad: bool = False,
                channel: str | None = None) -> dict | None:
        """A contact on `at`'s day; `bad`: the one that loses the customer; `channel`: campaign's."""
        rng = self.rng
        outbound = channel is not None or (not bad and rng.random() < 0.12)
        if channel is None:
            channel = cal.pick_channel(rng, OUTBOUND_CHANNELS if outbound else CONTACT_CHANNELS, at.date())
        at = cal.time_of_day(rng, at, channel)
        crisis = 2.5 if self.wave[0] <= at < self.wave[1] else 1.0
        complaint = bad or not outbound and rng.random() < crisis * min(0.4, max(0.01, 0.08 - 0.04 * self.mood))
        if reason == "campaign":
            outcome = "resolved"
        elif outbound:
            reason = rng.choice(OUTBOUND_REASONS)
        elif complaint:
            reason = rng.choice((reason, "complaint"))
        if reason != "campaign":
            outcome = rng.choices(("resolved", "unresolved", "escalated"),
                                  (0, 55, 45) if bad else (45, 25, 30) if complaint else (76, 17, 7))[0]
        duration = None
        if channel in ("phone", "chat"):
            duration = int(rng.lognormvariate(5.8 if channel == "phone" else 6.2, 0.6)
                           * (1.6 if complaint else 1.0))
        agent = None if channel in ("sms", "app", "web") or reason == "campaign" else f"A{rng.randint(1, 60):03d}"
        source = {"phone": CALLCENTRE, "store": POS}.get(channel, HELPDESK)
        contact_id = self._next("CT")
        fact = self._add("ContactLogged", at, source, contact_id, contact_id=contact_id,
                         channel=channel, direction="outbound" if outbound else "inbound",
                         reason=reason, outcome=outcome, is_complaint=complaint,
                         agent_id=agent, duration_s=duration)
        if fact is not None and complaint:
            self.complaints.append(at)
        if fact is not None and not outbound:
            self.contact_surveys(fact, bad and crisis > 1)  # the wave's let-down always answers
        return fact

    def contact_surveys(self, contact: dict[str, Any], bad: bool) -> None:
        """Some inbound contacts get each survey; the let-down customer always answers."""
        penalty = 1.5 * contact["is_complaint"] + {"resolved": 0, "unresolved": 1.0,
                                                   "escalated": 0.7}[contact["outcome"]]
        for kind, rate in CONTACT_SURVEYS.items():
            if bad and kind != "ces" or self.rng.random() < rate:
                self.survey(contact["occurred_at"] + self.rng.uniform(0.01, 2) * DAY, kind, penalty,
                            contact["channel"], contact_id=contact["contact_id"])

    def nps_surveys(self, registered: datetime, until: datetime) -> None:
        """A relationship NPS survey goes out by email every half year; three in ten answer."""
        at = registered + 90 * DAY
        while at < until:
            if self.rng.random() < 0.3:
                self.survey(at, "nps", 0.6 * sum(1 for t in self.complaints if t < at), "email")
            at += self.rng.uniform(160, 200) * DAY

    def survey(self, at: datetime, kind: str, penalty: float, channel: str,
               contact_id: str | None = None, order_id: str | None = None) -> None:
        """A score from the customer's mood, the channel's ease and what went wrong (`penalty`)."""
        low, high, typical, noise = SURVEYS[kind]
        swing = (high - low) / 4
        raw = typical + swing * (0.5 * self.mood + CHANNEL_EASE[channel] - penalty) + self.rng.gauss(0, noise)
        score = max(low, min(high, round(raw)))
        position = (score - low) / (high - low)
        band = "low" if position <= 0.4 else "high" if position >= 0.85 else "mid"
        comment = self.rng.choice(tab.COMMENTS[band]) if self.rng.random() < 0.25 else None
        self._add("FeedbackGiven", at, SURVEY, self._next("FB"), kind=kind, score=score,
                  comment=comment, channel=channel, about_contact_id=contact_id,
                  about_order_id=order_id)

    def erase(self) -> None:
        """Forget the customer near the end; nothing of theirs may follow the erasure."""
        registered = self.facts[0]["occurred_at"]
        at = max(registered + SECOND, self._ago(0.1, 45))
        self.facts = [f for f in self.facts if f["occurred_at"] < at or f is self.facts[0]]
        self._add("CustomerErased", min(at, self.end), CRM, self._next("erase"),
                  reason=self.rng.choice(("gdpr_request", "account_closed", "customer_request")))
