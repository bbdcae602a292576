"""What every flow shares: the flow rows, enrolment with holdout, exits, conversions, upkeep.

An enrolment plans all its steps at once and queues one outbox message per step (with its
`send_after`); exiting cancels the still-scheduled ones (status `skipped`). A holdout
enrolment (a deterministic share of customers, by hash of flow and customer id) is recorded
with its plan but receives no marketing: only transactional steps (an order confirmation
is owed to everyone) are sent. Reports compare treated and holdout conversions for lift.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
from dataclasses import dataclass, field

from sqlalchemy import and_, case, exists, func, inspect, or_, select, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge import config_cache, outbox
from helpdesk.marketing_bridge.models import Flow, FlowEnrollment, OutboundMessage
from helpdesk.marketing_bridge.templates_store import render, template_text

# key -> defaults. `settings` are editable on the flow page; holdout starts at 0 so nobody is
# held out until a lead decides to measure lift.
FLOW_DEFAULTS: dict[str, dict] = {
    "post_purchase": {
        "name": "Post-purchase",
        "trigger": "order_placed",
        "description": (
            "Confirmation and shipping update, then product-aware steps: setup guide and "
            "check-in for technical products, care guide for high-value ones, review request, "
            "second-purchase prompt with co-purchased products, refill prompt at 80% of a "
            "consumable's life, replenishment or new arrivals."
        ),
        "settings": {
            "shipping_day": 2,
            "review_day": 8,
            "second_purchase_day": 18,
            "late_day": 50,
            "max_order_age_days": 3,
            "recommendations": 3,
            "repeat_discount_text": "",
        },
    },
    "cart_recovery": {
        "name": "Cart recovery",
        "trigger": "checkout_abandoned",
        "description": (
            "Abandoned checkouts, branched by history: first-time visitors get social proof, "
            "benefits and an FAQ; returning customers a reminder with their points; high-value "
            "customers a personal email from a named lead plus a helpdesk task for that lead."
        ),
        "settings": {
            "first_time_hours": [1, 24, 72],
            "existing_hours": [1],
            "vip_hours": [1],
            "max_cart_age_days": 7,
        },
    },
    "winback": {
        "name": "Winback (At risk)",
        "trigger": "segment:at_risk",
        "description": "A personalised offer for customers who used to buy often, not lately.",
        "settings": {"cooldown_days": 180, "offer_text": ""},
    },
    "reactivation": {
        "name": "Reactivation and nurture (Lapsed, Lost)",
        "trigger": "segment:lapsed,lost",
        "description": "One reactivation email, then a low-frequency nurture.",
        "settings": {"cooldown_days": 365, "nurture_days": [45, 105, 165], "offer_text": ""},
    },
    "tier_welcome": {
        "name": "Tier welcome",
        "trigger": "tier_changed",
        "description": "Welcome to Regular or VIP when a customer moves up; VIPs hear from a "
        "named person.",
        "settings": {"vip_sender_name": ""},
    },
}

FLOW_KEYS = tuple(FLOW_DEFAULTS)
PENDING = ("scheduled", "sending")


@dataclass
class PlannedStep:
    """One step of an enrolment's plan: which template, when, and with what variables."""

    step: str  # unique within the enrolment, e.g. "review_request", "refill_prompt:12"
    template: str
    at: dt.datetime
    context: dict
    variables: dict = field(default_factory=dict)
    from_name: str | None = None


def ensure_default_flows() -> int:
    """Create the shipped flows that have no row yet; returns how many were added."""
    existing = set(db.session.scalars(select(Flow.key)))
    added = 0
    for key, spec in FLOW_DEFAULTS.items():
        if key in existing:
            continue
        db.session.add(
            Flow(
                key=key,
                name=spec["name"],
                description=spec["description"],
                trigger=spec["trigger"],
                active=True,
                holdout_percent=0.0,
                settings=dict(spec["settings"]),
            )
        )
        added += 1
    if added:
        db.session.flush()
    return added


# session.info key of the flow rows by key, loaded once per transaction: one order runs
# several flows' handlers (post-purchase, cart recovery, winback, tier welcome), each of
# which reads its flow and often another's (the VIP sender name).
_FLOWS = "helpdesk.flows.by_key"


_FLOW_COLUMNS = ("id", "key", "name", "description", "trigger", "active", "holdout_percent")


def _flow_rows(session) -> tuple[dict, ...]:
    """Every flow row's column values (plain values: each session gets its own copy of the
    settings dict, see `_flows_by_key`)."""
    columns = [getattr(Flow, name) for name in _FLOW_COLUMNS]
    return tuple(
        {**dict(zip(_FLOW_COLUMNS, values[:-1], strict=True)), "settings": values[-1]}
        for values in session.execute(select(*columns, Flow.settings).order_by(Flow.id))
    )


def _flows_by_key() -> dict[str, Flow]:
    """The session's Flow objects by key. Their column values come from the per-process
    snapshot (`config_cache`, no statement while it is fresh): a row the session holds
    already is used as it is, any other is attached as if just loaded."""
    session = db.session()
    rows = config_cache.cached("flow", session, lambda: _flow_rows(session))
    flows = {}
    for values in rows:
        flow = session.identity_map.get(identity_key(Flow, values["id"]))
        if flow is None:
            flow = Flow(**{**values, "settings": copy.deepcopy(values["settings"])})
            make_transient_to_detached(flow)
            session.add(flow)
        else:  # expired attributes (after a commit) filled as a load would, edits kept
            for name in inspect(flow).unloaded & values.keys():
                value = values[name]
                set_committed_value(
                    flow, name, copy.deepcopy(value) if name == "settings" else value
                )
        flows[flow.key] = flow
    session.info[_FLOWS] = (session.get_transaction(), flows)
    return flows


def get_flow(key: str) -> Flow:
    """The flow row for `key`, created with its defaults on first use.

    The rows are the session's own objects, set up once per transaction (a lead's edit in
    the same transaction changes the same object) from the per-process snapshot of the
    flow rows, which this process's edits drop at once (`config_cache`).
    """
    session = db.session()
    cached = session.info.get(_FLOWS)
    flows = cached[1] if cached is not None and cached[0] is session.get_transaction() else None
    flow = flows.get(key) if flows is not None else None
    if flow is None or flow not in session:
        flow = _flows_by_key().get(key)
    if flow is None:
        if key not in FLOW_DEFAULTS:
            raise KeyError(f"unknown flow {key!r}")
        ensure_default_flows()
        flow = _flows_by_key()[key]
    return flow


def setting(flow: Flow, name: str):
    """A flow setting, falling back to the shipped default."""
    value = (flow.settings or {}).get(name)
    if value is None:
        value = FLOW_DEFAULTS.get(flow.key, {}).get("settings", {}).get(name)
    return value


def holdout_bucket(flow_key: str, customer_id: int) -> float:
    """A stable number in [0, 100) for (flow, customer): the same customer, the same bucket."""
    digest = hashlib.sha256(f"{flow_key}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 / 100


def in_holdout(flow: Flow, customer_id: int) -> bool:
    """True when this customer falls in the flow's holdout share."""
    percent = float(flow.holdout_percent or 0)
    return percent > 0 and holdout_bucket(flow.key, customer_id) < percent


def find_enrollment(flow: Flow, trigger_ref: str) -> FlowEnrollment | None:
    return db.session.scalar(
        select(FlowEnrollment).where(
            FlowEnrollment.flow_id == flow.id, FlowEnrollment.trigger_ref == trigger_ref
        )
    )


def enroll(
    flow: Flow,
    customer,
    trigger_ref: str,
    steps: list[PlannedStep],
    *,
    branch: str | None = None,
    now: dt.datetime | None = None,
    sender_agent_id: int | None = None,
    looked_up: bool = False,
) -> FlowEnrollment | None:
    """Enrol `customer` once per (flow, trigger_ref) and queue its steps; None if inactive.

    `looked_up=True` when the caller has just found no enrolment for (flow, trigger_ref):
    the look-up is not repeated (a concurrent one is still caught by the unique key).
    """
    existing = None if looked_up else find_enrollment(flow, trigger_ref)
    if existing is not None:
        return existing
    if not flow.active or not steps:
        return None
    now = now or utcnow()
    steps = sorted(steps, key=lambda s: (s.at, s.step))
    holdout = in_holdout(flow, customer.id)
    kinds = {s.step: template_text(s.template).kind for s in steps}
    plan = [
        {"step": s.step, "template": s.template, "kind": kinds[s.step], "at": s.at.isoformat()}
        for s in steps
    ]
    # Only steps that will really be sent drive next_run_at; a holdout enrolment is
    # revisited when its plan would have ended, to complete it.
    sending = [s for s in steps if not holdout or kinds[s.step] == "transactional"]
    values = dict(
        flow_id=flow.id,
        customer_id=customer.id,
        trigger_ref=trigger_ref[:120],
        branch=branch,
        step=0,
        state="active",
        holdout=holdout,
        enrolled_at=now,
        sender_agent_id=sender_agent_id,
        plan=plan,
        next_run_at=sending[0].at if sending else steps[-1].at,
    )
    # One statement, no savepoint: a concurrent enrolment of the same (flow, trigger) makes
    # the INSERT return nothing, and that one is returned instead.
    enrollment = db.session.scalars(
        _insert_ignoring_conflict(("flow_id", "trigger_ref")).returning(FlowEnrollment),
        [values],
    ).one_or_none()
    if enrollment is None:
        return find_enrollment(flow, trigger_ref)
    _note_new_enrollment(flow, enrollment)
    # One look-up of the keys and one multi-row INSERT for all the steps (a redelivered
    # trigger finds the enrolment above and queues nothing).
    messages = []
    for step in sending:
        subject, body = render(step.template, step.context)
        messages.append(
            dict(
                customer=customer,
                kind=kinds[step.step],
                template=step.template,
                subject=subject,
                body=body,
                variables={"step": step.step, **step.variables},
                send_after=step.at,
                idempotency_key=f"flow:{enrollment.id}:{step.step}",
                from_name=step.from_name,
                flow_enrollment_id=enrollment.id,
            )
        )
    outbox.enqueue_many(messages)
    return enrollment


def _insert_ignoring_conflict(columns: tuple[str, ...]):
    """INSERT INTO flow_enrollment ... ON CONFLICT (columns) DO NOTHING (PostgreSQL, SQLite)."""
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(FlowEnrollment).on_conflict_do_nothing(index_elements=list(columns))


def exit_enrollments(enrollments, reason: str, now: dt.datetime | None = None) -> int:
    """End active enrolments early and cancel their scheduled messages; returns how many."""
    now = now or utcnow()
    ids = []
    for enrollment in enrollments:
        if enrollment.state != "active":
            continue
        enrollment.state = "exited"
        enrollment.exit_reason = reason[:120]
        enrollment.finished_at = now
        enrollment.next_run_at = None
        ids.append(enrollment.id)
    if ids:
        db.session.flush()
        outbox.skip_scheduled(reason, flow_enrollment_ids=ids)
    return len(ids)


def cancel_steps(enrollment_ids, templates, reason: str) -> int:
    """Cancel some still-scheduled steps of enrolments that otherwise go on."""
    enrollment_ids = list(enrollment_ids)
    if not enrollment_ids:
        return 0
    return outbox.skip_scheduled(reason, flow_enrollment_ids=enrollment_ids, templates=templates)


def _conversion_conditions(customer_id: int, order) -> list:
    """The customer's enrolments that were running when `order` was placed and are not
    converted yet: enrolled before it and not finished before it (the same purchase may
    already have ended the enrolment through a completed checkout), not its own."""
    return [
        FlowEnrollment.customer_id == customer_id,
        FlowEnrollment.converted_order_id.is_(None),
        FlowEnrollment.enrolled_at <= order.placed_at,
        or_(FlowEnrollment.finished_at.is_(None), FlowEnrollment.finished_at >= order.placed_at),
        FlowEnrollment.trigger_ref != f"order:{order.id}",
    ]


def record_conversion(customer_id: int, order, flow_keys=None, *, among_ids=None) -> int:
    """Mark the customer's enrolments that were running when `order` was placed as converted
    (only those of `among_ids` when given: the candidates a read just found)."""
    conditions = _conversion_conditions(customer_id, order)
    if flow_keys is not None:
        conditions.append(
            FlowEnrollment.flow_id.in_(select(Flow.id).where(Flow.key.in_(list(flow_keys))))
        )
    if among_ids is not None:
        conditions.append(FlowEnrollment.id.in_(list(among_ids)))
    result = db.session.execute(
        update(FlowEnrollment)
        .where(*conditions)
        .values(converted_order_id=order.id, converted_at=order.placed_at)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount or 0


# The flows an order converts and whose order_placed handlers exit or trim the customer's
# running enrolments (post-purchase, cart recovery, winback, reactivation).
ORDER_FLOWS = ("post_purchase", "cart_recovery", "winback", "reactivation")
# session.info key of what those handlers share for one order (see `order_enrollments`).
_ORDER_ENROLLMENTS = "helpdesk.flows.order_enrollments"


def order_enrollments(customer_id: int, order) -> list[tuple[str, FlowEnrollment]]:
    """(flow key, enrolment) of the customer's active enrolments in ORDER_FLOWS, after
    marking those running when `order` was placed as converted by it.

    Done once per order and transaction for all the order_placed handlers together; each
    handler filters the list by its flows and by `state == "active"` when it uses it, so an
    enrolment another handler exited meanwhile (the same session object) is left out, as a
    fresh read would. A new enrolment for the customer in these flows joins the list
    (`enroll`). One SELECT reads the active enrolments and the conversion candidates
    together; the conversion UPDATE (with its full conditions, re-checked under the row
    locks) runs only when there are candidates, which most orders do not have.
    """
    session = db.session()
    transaction = session.get_transaction()
    cached = session.info.get(_ORDER_ENROLLMENTS)
    if cached is not None and cached[0] is transaction and cached[1] == (customer_id, order.id):
        return cached[2]
    convertible = and_(*_conversion_conditions(customer_id, order))
    found = session.execute(
        select(FlowEnrollment, Flow.key, case((convertible, 1), else_=0))
        .join(Flow, Flow.id == FlowEnrollment.flow_id)
        .where(
            Flow.key.in_(ORDER_FLOWS),
            FlowEnrollment.customer_id == customer_id,
            or_(FlowEnrollment.state == "active", convertible),
        )
        .order_by(FlowEnrollment.id)
    ).all()
    candidates = [enrollment.id for enrollment, _key, flag in found if flag]
    if candidates:
        record_conversion(customer_id, order, flow_keys=ORDER_FLOWS, among_ids=candidates)
    rows = [(key, enrollment) for enrollment, key, _flag in found if enrollment.state == "active"]
    session.info[_ORDER_ENROLLMENTS] = (transaction, (customer_id, order.id), rows)
    return rows


def running(rows: list[tuple[str, FlowEnrollment]], flow_keys) -> list[FlowEnrollment]:
    """The still-active enrolments of `order_enrollments` rows in the given flows."""
    keys = (flow_keys,) if isinstance(flow_keys, str) else tuple(flow_keys)
    return [e for key, e in rows if key in keys and e.state == "active"]


def _note_new_enrollment(flow: Flow, enrollment: FlowEnrollment) -> None:
    """Add a fresh enrolment to the shared per-order list when it belongs there."""
    cached = db.session.info.get(_ORDER_ENROLLMENTS)
    if (
        cached is not None
        and flow.key in ORDER_FLOWS
        and cached[1][0] == enrollment.customer_id
        and enrollment.state == "active"
    ):
        cached[2].append((flow.key, enrollment))


def active_enrollments(flow_key: str | tuple[str, ...], customer_id: int) -> list[FlowEnrollment]:
    """The customer's active enrolments in one flow (or in any of several, in one query)."""
    keys = [flow_key] if isinstance(flow_key, str) else list(flow_key)
    return list(
        db.session.scalars(
            select(FlowEnrollment)
            .join(Flow, Flow.id == FlowEnrollment.flow_id)
            .where(
                Flow.key.in_(keys),
                FlowEnrollment.customer_id == customer_id,
                FlowEnrollment.state == "active",
            )
        )
    )


def advance_enrollments(now: dt.datetime | None = None) -> dict:
    """Bookkeeping: move due enrolments to their next step or complete them (set-based)."""
    now = now or utcnow()
    pending = and_(
        OutboundMessage.flow_enrollment_id == FlowEnrollment.id,
        OutboundMessage.status.in_(PENDING),
    )
    due = and_(FlowEnrollment.state == "active", FlowEnrollment.next_run_at <= now)
    done_steps = (
        select(func.count(OutboundMessage.id))
        .where(
            OutboundMessage.flow_enrollment_id == FlowEnrollment.id,
            OutboundMessage.status.not_in(PENDING),
        )
        .scalar_subquery()
    )
    completed = db.session.execute(
        update(FlowEnrollment)
        .where(due, ~exists(select(OutboundMessage.id).where(pending)))
        .values(state="completed", finished_at=now, next_run_at=None, step=done_steps)
        .execution_options(synchronize_session=False)
    ).rowcount
    next_at = select(func.min(OutboundMessage.send_after)).where(pending).scalar_subquery()
    # A step already due waits for the dispatcher: the enrolment stays due until it is sent.
    moved = db.session.execute(
        update(FlowEnrollment)
        .where(due)
        .values(next_run_at=func.coalesce(next_at, now), step=done_steps)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.flush()
    return {"completed": completed or 0, "advanced": moved or 0}


def steps_of(enrollment: FlowEnrollment) -> list[dict]:
    """The enrolment's plan joined with what happened to each step's message."""
    messages = {
        (m.variables or {}).get("step"): m
        for m in db.session.scalars(
            select(OutboundMessage).where(OutboundMessage.flow_enrollment_id == enrollment.id)
        )
    }
    out = []
    for planned in enrollment.plan or []:
        message = messages.get(planned["step"])
        out.append({**planned, "message": message})
    return out


def reached_any(enrollment_ids) -> set[int]:
    """Enrolment ids (of `enrollment_ids`) with at least one message actually sent."""
    ids = list(enrollment_ids)
    if not ids:
        return set()
    return set(
        db.session.scalars(
            select(OutboundMessage.flow_enrollment_id)
            .where(
                OutboundMessage.flow_enrollment_id.in_(ids),
                or_(OutboundMessage.status == "sent", OutboundMessage.status == "sending"),
            )
            .distinct()
        )
    )


def update_flow(flow: Flow, values: dict) -> Flow:
    """Save a lead's edit of a flow: active, holdout share and its own settings."""
    flow.active = bool(values.pop("active"))
    flow.holdout_percent = float(values.pop("holdout_percent"))
    settings = dict(flow.settings or {})
    known = FLOW_DEFAULTS.get(flow.key, {}).get("settings", {})
    settings.update({k: v for k, v in values.items() if k in known})
    flow.settings = settings
    db.session.flush()
    return flow
