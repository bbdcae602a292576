"""Property: after any sequence of opens, solves, reopens, refunds, reviews, unsubscribes,
resubscribes, bounces, pauses, email changes and expiries, an ESP that replays the change
feed from seq 0 holds exactly the active set, and open_ticket matches the open tickets."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.suppression import active_reasons, lift, queries, suppress
from helpdesk.marketing_bridge.suppression.services import expire_due
from helpdesk.tickets.models import OPEN_STATUSES, Ticket
from helpdesk.tickets.queries import has_open_ticket
from tests.factories.customer_context import CustomerFactory
from tests.unit.suppression.conftest import (
    active_set,
    change_email,
    expire_now,
    open_ticket,
    receive_review,
    record_refund,
    replay_changes,
    set_category,
    set_status,
)

CUSTOMERS = 3
_unique = itertools.count()

customer_index = st.integers(0, CUSTOMERS - 1)
pick = st.integers(0, 1000)  # an index into whatever exists at that point, modulo its size
EXPIRE = st.tuples(st.just("expire"), pick, st.booleans())
PAUSE = st.tuples(st.just("pause"), customer_index, st.booleans())
BAD_REVIEW = st.tuples(st.just("review"), customer_index, st.integers(1, 2))
# Expiry needs a row with an end date first, so those operations are drawn more often.
OPERATIONS = st.one_of(
    st.tuples(st.just("open"), customer_index, st.sampled_from(["question", "refund"])),
    st.tuples(st.just("solve"), pick),
    st.tuples(st.just("close"), pick),
    st.tuples(st.just("reopen"), pick),
    st.tuples(st.just("recategorise"), pick, st.sampled_from(["refund", "shipping"])),
    st.tuples(st.just("review"), customer_index, st.integers(1, 5)),
    BAD_REVIEW,
    st.tuples(st.just("refund"), customer_index),
    st.tuples(st.just("unsubscribe"), customer_index),
    st.tuples(st.just("resubscribe"), customer_index),
    st.tuples(st.just("bounce_unknown"), st.integers(0, 2)),
    PAUSE,
    PAUSE,
    st.tuples(st.just("resume"), customer_index),
    st.tuples(st.just("email_change"), customer_index),
    EXPIRE,
    EXPIRE,
    EXPIRE,
)


class World:
    """The objects one example acts on."""

    def __init__(self):
        run = next(_unique)
        self.run = run
        self.customers = [CustomerFactory(email=f"p{run}-c{i}@prop.test") for i in range(CUSTOMERS)]
        self.tickets: list[Ticket] = []

    def ticket(self, index, statuses):
        candidates = [t for t in self.tickets if t.status in statuses]
        return candidates[index % len(candidates)] if candidates else None

    def apply(self, op):
        name, *args = op
        if name == "open":
            customer, category = self.customers[args[0]], args[1]
            self.tickets.append(open_ticket(customer, category=category))
        elif name == "solve" and (t := self.ticket(args[0], OPEN_STATUSES)):
            set_status(t, "solved")
        elif name == "close" and (t := self.ticket(args[0], (*OPEN_STATUSES, "solved"))):
            set_status(t, "closed")
        elif name == "reopen" and (t := self.ticket(args[0], ("solved",))):
            set_status(t, "open")
        elif name == "recategorise" and (t := self.ticket(args[0], OPEN_STATUSES)):
            set_category(t, args[1])
        elif name == "review":
            customer = self.customers[args[0]]
            review = receive_review(customer, rating=args[1])
            follow_up = db.session.scalar(select(Ticket).where(Ticket.review_id == review.id))
            if follow_up is not None:
                self.tickets.append(follow_up)
        elif name == "refund":
            record_refund(self.customers[args[0]])
        elif name == "unsubscribe":
            suppress(self.customers[args[0]], None, "unsubscribed", source_ref="esp:unsubscribe")
        elif name == "resubscribe":
            lift(self.customers[args[0]], "unsubscribed")
            lift(self.customers[args[0]], "bounced")
        elif name == "bounce_unknown":
            suppress(None, f"p{self.run}-stranger{args[0]}@prop.test", "bounced")
        elif name == "pause":
            expires = utcnow().replace(year=utcnow().year + 1) if args[1] else None
            suppress(self.customers[args[0]], None, "manual", note="prop", expires_at=expires)
        elif name == "resume":
            lift(self.customers[args[0]], "manual")
        elif name == "email_change":
            customer = self.customers[args[0]]
            change_email(customer, f"p{self.run}-n{next(_unique)}@prop.test")
        elif name == "expire":
            from helpdesk.marketing_bridge.models import Suppression

            expiring = list(
                db.session.scalars(
                    select(Suppression)
                    .where(
                        Suppression.lifted_at.is_(None),
                        Suppression.expires_at.is_not(None),
                        Suppression.email.like(f"p{self.run}-%"),
                    )
                    .order_by(Suppression.id)
                )
            )
            if expiring:
                expire_now(expiring[args[0] % len(expiring)])
                if args[1]:  # the job runs now; otherwise later
                    expire_due()

    def replica_matches(self, replica: dict, after: int) -> int:
        """Poll the feed like an ESP would and compare with the active set of this world."""
        for change in queries.changes_after(after, 100_000):
            if change.action == "suppressed":
                replica[change.email] = change.reasons
            else:
                replica.pop(change.email, None)
            after = change.seq
        prefix = f"p{self.run}-"
        mine = {e: r for e, r in replica.items() if e.startswith(prefix)}
        active = {e.email: e.reasons for e in queries.feed_page(None, 100_000, search=prefix)}
        assert mine == active
        return after


@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(OPERATIONS, min_size=1, max_size=30))
def test_replaying_the_change_feed_yields_the_active_set(app, operations):
    world = World()
    replica: dict[str, list[str]] = {}
    after = queries.latest_seq()
    for op in operations:
        world.apply(op)
        if op[0] == "expire" and not op[-1]:
            continue  # the expiry job has not run yet: the next step sees it unpublished
        expire_due()  # expiries reach the feed when the job runs (every minute)
        after = world.replica_matches(replica, after)
    expire_due()

    assert replay_changes() == active_set()
    for customer in world.customers:
        reasons = active_reasons(customer.id)
        assert ("open_ticket" in reasons) == has_open_ticket(customer.id), (customer, reasons)
