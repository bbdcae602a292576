"""Bulk mode of the order importers: the same end state as the per-order path, set-based.

The reference is the per-order path (`bulk=False`): every order's reactions as it lands. The
same history is imported twice under two prefixes, once each way, and every customer of one
is compared with its twin of the other: metrics, points, tier, tier_changed, segments, flows.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import select

from helpdesk import events
from helpdesk.customer_context.ingest import bulk
from helpdesk.customer_context.ingest.importers import import_shopify_orders, import_transactions
from helpdesk.customer_context.metrics import recompute
from helpdesk.customer_context.models import Customer, CustomerMetrics, LoyaltyEntry, Order
from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Flow, FlowEnrollment, SegmentMembership
from tests.factories.customer_context import CustomerFactory, OrderFactory

HEADER = "customer_id,email,order_id,placed_at,total,sku,quantity,category"
SKIP = {"customer_id", "computed_at", "as_of", "tier_since"}  # moments of the refresh itself


@pytest.fixture
def shop(app):
    """Default segments, flows and templates; a scored population with stored boundaries."""
    from helpdesk.marketing_bridge.flows import ensure_default_flows
    from helpdesk.marketing_bridge.segments import ensure_default_segments
    from helpdesk.marketing_bridge.templates_store import ensure_default_templates

    ensure_default_flows()
    ensure_default_templates()
    ensure_default_segments()
    rng = random.Random(7)
    now = utcnow()
    for n in range(40):
        customer = CustomerFactory(email=f"base{n}@shop.test", external_id=f"base-{n}")
        for _ in range(rng.randint(1, 6)):
            OrderFactory(
                customer=customer,
                placed_at=now - dt.timedelta(days=rng.randint(2, 700)),
                total=rng.choice([12, 35, 60, 120, 400]),
            )
    for prefix in ("a", "b"):  # existing customers with the same history, one per prefix
        twin = CustomerFactory(email=f"{prefix}-old@shop.test", external_id=f"{prefix}-old")
        OrderFactory(customer=twin, placed_at=now - dt.timedelta(days=300), total=50)
    recompute()
    db.session.commit()
    return now


def _history_csv(path, prefix: str, now: dt.datetime):
    """One history under a prefix: old and live orders, repeat buyers, big spenders."""
    rng = random.Random(11)  # the same rows for every prefix
    lines = [HEADER]
    customers = [f"{prefix}-{n}" for n in range(12)] + [f"{prefix}-old"]
    order = 0
    for index, customer in enumerate(customers):
        for _ in range(1 + index % 5):
            order += 1
            days = rng.choice([800, 400, 200, 90, 45, 20, 1]) if index % 4 else 500
            placed = (now - dt.timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
            total = rng.choice(["9.99", "35.00", "80.50", "250.00", "1200.00"])
            for line in range(1 + order % 2):
                lines.append(
                    f"{customer},{customer}@shop.test,{prefix.upper()}-{order},{placed},"
                    f"{total if line == 0 else ''},SKU-{line},1,coffee"
                )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ref(ref: str, names: dict[int, str], prefix: str, customer_id: int) -> str:
    """A trigger ref without the ids that differ between the twins."""
    kind, _, rest = ref.partition(":")
    if kind == "order":
        return "order:" + names[int(rest)].lower().replace(prefix, "_")
    return ref.replace(str(customer_id), "<customer>")


def _state(prefix: str) -> dict[str, dict]:
    """Everything the reactions derive, per customer, with the prefix taken out."""
    db.session.expire_all()
    out = {}
    customers = db.session.scalars(
        select(Customer).where(Customer.external_id.like(f"{prefix}-%"))
    ).all()
    names = {o.id: o.name for o in db.session.scalars(select(Order))}
    for customer in customers:
        key = customer.external_id.removeprefix(f"{prefix}-")
        metrics = db.session.get(CustomerMetrics, customer.id)
        entries = db.session.scalars(
            select(LoyaltyEntry).where(LoyaltyEntry.customer_id == customer.id)
        ).all()
        segments = db.session.scalars(
            select(SegmentMembership.segment_id).where(
                SegmentMembership.customer_id == customer.id, SegmentMembership.exited_at.is_(None)
            )
        ).all()
        flows = db.session.execute(
            select(Flow.key, FlowEnrollment.trigger_ref, FlowEnrollment.state)
            .join(Flow, Flow.id == FlowEnrollment.flow_id)
            .where(FlowEnrollment.customer_id == customer.id)
        ).all()
        out[key] = {
            "metrics": {
                c.name: getattr(metrics, c.name)
                for c in CustomerMetrics.__table__.columns
                if c.name not in SKIP
            }
            if metrics
            else None,
            "points": sorted(
                (e.points, e.reason, names[int(e.ref.split(":")[1])].lower().replace(prefix, "_"))
                for e in entries
            ),
            "segments": sorted(segments),
            "flows": sorted(
                (flow, _ref(ref, names, prefix, customer.id), state) for flow, ref, state in flows
            ),
        }
    return out


CUSTOMER_SKIP = {"id", "external_id", "email"}  # differ by the prefix
ORDER_SKIP = {"id", "customer_id", "created_at"}  # created_at: the moment of the write


def _rows(prefix: str) -> dict[str, dict]:
    """The customer, order and line rows themselves, per customer, prefix taken out."""
    db.session.expire_all()
    out = {}
    customers = db.session.scalars(
        select(Customer).where(Customer.external_id.like(f"{prefix}-%"))
    ).all()
    for customer in customers:
        imported = Order.external_id.like(f"{prefix.upper()}-%")
        orders = db.session.scalars(
            select(Order)
            .where(Order.customer_id == customer.id, imported)
            .order_by(Order.external_id)
        ).all()

        def strip(value):
            if not isinstance(value, str):
                return value
            return value.replace(f"{prefix}-", "_-").replace(f"{prefix.upper()}-", "_-")

        key = customer.external_id.removeprefix(f"{prefix}-")
        out[key] = {
            # The factory-made twins differ in names; what the import sets is created_at.
            "customer": {
                c.name: getattr(customer, c.name)
                for c in Customer.__table__.columns
                if c.name not in CUSTOMER_SKIP and (key != "old" or c.name == "created_at")
            },
            "orders": [
                (
                    {
                        c.name: strip(getattr(order, c.name))
                        for c in Order.__table__.columns
                        if c.name not in ORDER_SKIP
                    },
                    sorted(
                        (line.sku, line.title, line.category, line.quantity, line.price)
                        for line in order.lines
                    ),
                )
                for order in orders
            ],
        }
    return out


def test_bulk_import_ends_where_the_per_order_path_ends(shop, tmp_path):
    tiers: list[tuple[str, str | None, str]] = []

    def on_tier(sender, customer, old, new, **_):
        tiers.append((customer.external_id, old, new))

    events.tier_changed.connect(on_tier)
    try:
        per_order = import_transactions(_history_csv(tmp_path / "a.csv", "a", shop), bulk=False)
        bulk_report = import_transactions(
            _history_csv(tmp_path / "b.csv", "b", shop), bulk=True, batch_size=7
        )
    finally:
        events.tier_changed.disconnect(on_tier)

    assert per_order.ok and bulk_report.ok
    assert per_order.outcomes == bulk_report.outcomes == {"created": 36}
    a, b = _state("a"), _state("b")
    assert set(a) == set(b) and len(a) == 13
    for key in a:
        assert b[key] == a[key], key
    # The rows written: customers "since" their first order, orders and lines column by column.
    a_rows, b_rows = _rows("a"), _rows("b")
    for key in a_rows:
        assert b_rows[key] == a_rows[key], key
    assert a_rows["0"]["customer"]["created_at"] < shop - dt.timedelta(days=100)
    # Enough variety to mean something: tiers moved, points earned, live orders enrolled.
    assert {new for _c, _old, new in tiers} - {"new"}
    assert any(state["flows"] for state in b.values())
    assert all(state["points"] for state in b.values())
    final = {c: (old, new) for c, old, new in tiers}
    assert {k.removeprefix("b-"): v for k, v in final.items() if k.startswith("b-")} == {
        k.removeprefix("a-"): v for k, v in final.items() if k.startswith("a-")
    }


def test_bulk_segments_match_a_full_refresh(shop, tmp_path):
    from helpdesk.marketing_bridge.segments import refresh_all

    import_transactions(_history_csv(tmp_path / "b.csv", "b", shop))
    before = _state("b")
    assert any(state["segments"] for state in before.values())

    refresh_all()

    assert {k: v["segments"] for k, v in _state("b").items()} == {
        k: v["segments"] for k, v in before.items()
    }


def test_historical_orders_reach_no_flow_receiver(shop, write_csv):
    """Only orders of the last LIVE_ORDER_DAYS go to the flows; older ones are history."""
    heard: list[str] = []

    def spy(sender, order, customer, **_):
        heard.append(order.external_id)

    now = utcnow()
    recent = (now - dt.timedelta(days=bulk.LIVE_ORDER_DAYS - 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    old = (now - dt.timedelta(days=bulk.LIVE_ORDER_DAYS + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write_csv(f"""
        {HEADER}
        h1,h1@shop.test,OLD-1,{old},40.00,A,1,x
        h1,h1@shop.test,NEW-1,{recent},40.00,A,1,x
        h2,h2@shop.test,OLD-2,2019-05-01T10:00:00Z,15.00,A,1,x
    """)
    events.order_placed.connect(spy)
    try:
        report = import_transactions(path)
    finally:
        events.order_placed.disconnect(spy)

    assert report.ok, report.errors
    assert heard == ["NEW-1"]
    # The derivations still ran for every order: points and metrics count the old ones too.
    h2 = db.session.scalars(select(Customer).where(Customer.external_id == "h2")).one()
    assert db.session.get(CustomerMetrics, h2.id).orders_count == 1
    assert db.session.scalars(
        select(LoyaltyEntry.points).where(LoyaltyEntry.customer_id == h2.id)
    ).all() == [15]


def test_a_back_fill_enrols_no_post_purchase_flow(shop, write_csv):
    path = write_csv(f"""
        {HEADER}
        p1,p1@shop.test,P-1,2024-01-01T10:00:00Z,40.00,A,1,x
        p1,p1@shop.test,P-2,{utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")},40.00,A,1,x
    """)
    import_transactions(path)

    refs = db.session.scalars(
        select(FlowEnrollment.trigger_ref)
        .join(Flow, Flow.id == FlowEnrollment.flow_id)
        .where(Flow.key == "post_purchase")
    ).all()
    placed = {o.external_id: o.id for o in db.session.scalars(select(Order))}
    assert refs == [f"order:{placed['P-2']}"]


def test_bulk_statements_do_not_grow_with_the_orders(shop, write_csv, count_queries):
    def csv(n: int, tag: str):
        rows = [HEADER] + [
            f"{tag}{i % (n // 2)},{tag}{i % (n // 2)}@shop.test,{tag}-{i},2023-03-01T10:00:00Z,"
            f"20.00,A,1,x"
            for i in range(n)
        ]
        return write_csv("\n".join(rows))

    small, large = csv(20, "s"), csv(80, "l")
    count_queries.reset()
    import_transactions(small, batch_size=1000)
    few = len(count_queries.statements)
    count_queries.reset()
    import_transactions(large, batch_size=1000)
    many = len(count_queries.statements)

    # Per order, the per-order path costs dozens of statements; here 4x the orders (and
    # customers) add none beyond the chunked look-ups.
    assert many <= few + 4, (few, many)


def test_a_failing_live_reaction_fails_only_its_order_in_bulk_mode(shop, write_csv):
    def refuse(sender, order, customer, **kwargs):
        if order.external_id == "O2":
            raise RuntimeError("handler refused O2")

    today = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write_csv(f"""
        {HEADER}
        c1,a@shop.test,O1,{today},10.00,A,1,x
        c2,b@shop.test,O2,{today},20.00,A,1,x
        c3,c@shop.test,O3,2020-01-01T00:00:00Z,30.00,A,1,x
    """)
    events.order_placed.connect(refuse)
    try:
        report = import_transactions(path)
    finally:
        events.order_placed.disconnect(refuse)

    assert report.outcomes == {"created": 2}, report.errors
    [(row, message)] = report.errors
    assert row == 3 and "RuntimeError: handler refused O2" in message
    assert {o.external_id for o in db.session.scalars(select(Order))} >= {"O1", "O3"}
    assert db.session.scalar(select(Order).where(Order.external_id == "O2")) is None


def test_shopify_export_in_bulk_mode_earns_points_for_counted_orders_only(shop):
    from tests.unit.customer_context.ingest.conftest import DATA

    report = import_shopify_orders(DATA / "shopify_orders_export.csv")

    assert report.ok, report.errors
    earned = db.session.scalars(
        select(LoyaltyEntry.ref).where(LoyaltyEntry.reason == "earn", LoyaltyEntry.ref.isnot(None))
    ).all()
    cancelled = db.session.scalars(select(Order).where(Order.external_id == "5500000003")).one()
    assert len(earned) == 3
    assert f"order:{cancelled.id}" not in earned


def test_bulk_mode_knows_every_receiver_it_replaces(app):
    """A new receiver of order_placed or customer_metrics_changed must be considered here:
    bulk mode calls unknown ones per live order / per customer, but someone should decide
    whether history (orders older than LIVE_ORDER_DAYS) may skip it."""
    placed = {bulk.qualified_name(r) for r in events.order_placed.receivers_for(bulk.SENDER)}
    changed = {
        bulk.qualified_name(r) for r in events.customer_metrics_changed.receivers_for(bulk.SENDER)
    }
    assert placed == {
        "helpdesk.customer_context.metrics.on_order_changed",
        "helpdesk.customer_context.loyalty.on_order_placed",
        "helpdesk.marketing_bridge.flows.post_purchase.on_order_placed",
        "helpdesk.marketing_bridge.flows.cart_recovery.on_order_placed",
        "helpdesk.marketing_bridge.flows.winback.on_order_placed",
    }
    assert changed == {
        "helpdesk.marketing_bridge.segments.membership.on_metrics_changed",
        "helpdesk.escalation.handlers.on_customer_metrics_changed",
    }


def test_an_edited_order_in_bulk_mode_still_tells_the_metrics_changed_receivers(shop, write_csv):
    """Loading mutes customer_metrics_changed; a re-import that edits an order's total must
    still reach its receivers (escalation re-evaluates the customer's open tickets)."""
    first = write_csv(f"""
        {HEADER}
        e1,e1@shop.test,E-1,2024-02-01T10:00:00Z,40.00,A,1,x
    """)
    import_transactions(first)
    heard: list[int] = []

    def spy(sender, customer, metrics=None, **_):
        heard.append(customer.id)

    edited = write_csv(f"""
        {HEADER}
        e1,e1@shop.test,E-1,2024-02-01T10:00:00Z,95.00,A,1,x
    """)
    events.customer_metrics_changed.connect(spy)
    try:
        report = import_transactions(edited)
    finally:
        events.customer_metrics_changed.disconnect(spy)

    customer = db.session.scalars(select(Customer).where(Customer.external_id == "e1")).one()
    assert report.outcomes == {"updated": 1}
    assert heard == [customer.id]
    assert db.session.get(CustomerMetrics, customer.id).total_spent == 95


def test_bulk_segments_refresh_only_the_imported_customers(shop, tmp_path):
    """The end-of-import refresh looks at the customers the import touched: a bystander's
    stale membership waits for the scheduled full refresh, as after a live order."""
    from helpdesk.marketing_bridge.models import Segment
    from helpdesk.marketing_bridge.segments import refresh_all

    refresh_all()
    bystander = db.session.scalar(select(Customer).where(Customer.external_id == "base-0"))
    inside = select(SegmentMembership.segment_id).where(
        SegmentMembership.customer_id == bystander.id, SegmentMembership.exited_at.is_(None)
    )
    segment = db.session.scalar(select(Segment).where(Segment.id.not_in(inside)).limit(1))
    stale = SegmentMembership(segment_id=segment.id, customer_id=bystander.id, entered_at=shop)
    db.session.add(stale)
    db.session.commit()

    import_transactions(_history_csv(tmp_path / "b.csv", "b", shop))

    db.session.expire_all()
    assert any(state["segments"] for state in _state("b").values())
    assert db.session.get(SegmentMembership, stale.id).exited_at is None
    refresh_all()
    db.session.expire_all()
    assert db.session.get(SegmentMembership, stale.id).exited_at is not None
