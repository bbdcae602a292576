"""Customers: matching, upserts from the store, marketing consent, email changes, touches."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import insert, select

from helpdesk import events
from helpdesk.customer_context.models import Customer
from helpdesk.customer_context.schemas import CustomerData, Touch
from helpdesk.customer_context.services.common import (
    SENDER,
    UNRESOLVED,
    CustomerContextError,
    Outcome,
    assign,
    is_stale,
    normalise_email,
)
from helpdesk.database import utcnow
from helpdesk.extensions import db

log = logging.getLogger(__name__)


def find_customer(external_id: str | None = None, email: str | None = None) -> Customer | None:
    """The customer with this source id, else with this email (case-insensitive)."""
    if external_id:
        found = db.session.scalar(select(Customer).where(Customer.external_id == external_id))
        if found is not None:
            return found
    if email:
        return db.session.scalar(select(Customer).where(Customer.email == email.strip().lower()))
    return None


def find_or_create_customer(
    email, first_name="", last_name="", phone=None, external_id=None
) -> Customer:
    """Match by external id, then email; create when absent; fill blank names and phone."""
    email = normalise_email(email)
    customer = find_customer(external_id, email)
    if customer is None:
        return add_customer(email, first_name, last_name, phone, external_id)
    fill_customer(customer, first_name, last_name, phone, external_id)
    return customer


def add_customer(
    email: str, first_name="", last_name="", phone=None, external_id=None, *, flush: bool = True
) -> Customer:
    """Insert a customer the caller knows is absent (importers look customers up in bulk;
    they pass flush=False and flush once per batch)."""
    customer = Customer(
        email=normalise_email(email),
        first_name=(first_name or "")[:120],
        last_name=(last_name or "")[:120],
        phone=(phone or None) and phone[:40],
        external_id=external_id or None,
        tags=[],
        created_at=utcnow(),
    )
    db.session.add(customer)
    if flush:
        db.session.flush()
    return customer


def create_customers(refs: list[CustomerData]) -> dict[str, Customer]:
    """Insert customers the caller knows are absent, in bulk; returns them by email.

    Emails must be distinct and valid (the importers pass what they looked up in bulk)."""
    if not refs:
        return {}
    now = utcnow()
    rows = [
        {
            "email": normalise_email(ref.email),
            "external_id": ref.external_id or None,
            "first_name": (ref.first_name or "")[:120],
            "last_name": (ref.last_name or "")[:120],
            "phone": (ref.phone or None) and ref.phone[:40],
            "accepts_marketing": bool(ref.accepts_marketing),
            "marketing_updated_at": (
                None if ref.accepts_marketing is None else ref.marketing_updated_at or now
            ),
            "tags": ref.tags or [],
            "note": ref.note,
            "created_at": ref.created_at or now,
            "source_updated_at": ref.updated_at,
        }
        for ref in refs
    ]
    db.session.execute(insert(Customer.__table__), rows)
    created: dict[str, Customer] = {}
    emails = [row["email"] for row in rows]
    for start in range(0, len(emails), 500):
        chunk = emails[start : start + 500]
        created.update(
            (c.email, c)
            for c in db.session.scalars(select(Customer).where(Customer.email.in_(chunk)))
        )
    return created


def fill_customer(customer: Customer, first_name="", last_name="", phone=None, external_id=None):
    """Fill what the customer record lacks; never overwrites a known value."""
    if external_id and customer.external_id is None:
        customer.external_id = external_id
    if first_name and not customer.first_name:
        customer.first_name = first_name[:120]
    if last_name and not customer.last_name:
        customer.last_name = last_name[:120]
    if phone and not customer.phone:
        customer.phone = phone[:40]


def upsert_customer(
    data: CustomerData, *, existing: Customer | None | object = UNRESOLVED
) -> Outcome[Customer]:
    """Create or update a customer from the source's record (stale updates are ignored).

    `existing` may be passed when the caller already looked the customer up (importers)."""
    customer = find_customer(data.external_id, data.email) if existing is UNRESOLVED else existing
    if customer is None:
        if not data.email:
            return Outcome(None, "skipped", "a customer without an email address is not stored")
        customer = Customer(
            email=normalise_email(data.email),
            external_id=data.external_id,
            first_name=(data.first_name or "")[:120],
            last_name=(data.last_name or "")[:120],
            phone=data.phone,
            tags=data.tags or [],
            note=data.note,
            created_at=data.created_at or utcnow(),
            source_updated_at=data.updated_at,
        )
        db.session.add(customer)
        db.session.flush()
        if data.accepts_marketing is not None:
            set_marketing_consent(customer, data.accepts_marketing, data.marketing_updated_at)
        return Outcome(customer, "created")
    if is_stale(data.updated_at, customer.source_updated_at):
        return Outcome(customer, "stale")

    changed = False
    if data.external_id and customer.external_id is None:
        customer.external_id = data.external_id
        changed = True
    if data.email and data.email != customer.email:
        new_email = normalise_email(data.email)
        if find_customer(email=new_email) is None:
            change_email(customer, new_email)
            changed = True
        else:
            log.warning(
                "customer %s: email change to %s skipped, address held by another customer",
                customer.id,
                new_email,
            )
    values = {
        "first_name": None if data.first_name is None else data.first_name[:120],
        "last_name": None if data.last_name is None else data.last_name[:120],
        "phone": data.phone,
        "tags": data.tags,
        "note": data.note,
    }
    changed |= assign(customer, **{k: v for k, v in values.items() if v is not None})
    if data.created_at and data.created_at < customer.created_at:
        customer.created_at = data.created_at
        changed = True
    if data.updated_at and data.updated_at != customer.source_updated_at:
        customer.source_updated_at = data.updated_at
    if data.accepts_marketing is not None:
        changed |= set_marketing_consent(
            customer, data.accepts_marketing, data.marketing_updated_at
        )
    db.session.flush()
    return Outcome(customer, "updated" if changed else "unchanged")


def set_marketing_consent(customer: Customer, accepts: bool, at: dt.datetime | None = None) -> bool:
    """Record email-marketing consent; an older statement never overrides a newer one."""
    if at is not None and customer.marketing_updated_at and at < customer.marketing_updated_at:
        return False
    if customer.accepts_marketing == accepts and customer.marketing_updated_at is not None:
        return False
    customer.accepts_marketing = bool(accepts)
    customer.marketing_updated_at = at or utcnow()
    db.session.flush()
    return True


def change_email(customer: Customer, new_email: str) -> Customer:
    """Change a customer's address (emits customer_email_changed)."""
    new_email = normalise_email(new_email)
    old = customer.email
    if new_email == old:
        return customer
    holder = find_customer(email=new_email)
    if holder is not None and holder.id != customer.id:
        raise CustomerContextError("email", "Another customer already uses this address.")
    customer.email = new_email
    db.session.flush()
    events.customer_email_changed.send(SENDER, customer=customer, old=old, new=new_email)
    return customer


def apply_touch(customer: Customer, placed_at: dt.datetime, touch: Touch | None) -> None:
    """First touch from the earliest order seen, last touch from the latest."""
    if touch is None:
        return
    if customer.first_touch_at is None or placed_at < customer.first_touch_at:
        customer.first_touch_source = touch.source
        customer.first_touch_medium = touch.medium
        customer.first_touch_campaign = touch.campaign
        customer.first_touch_at = placed_at
    if customer.last_touch_at is None or placed_at >= customer.last_touch_at:
        customer.last_touch_source = touch.source
        customer.last_touch_medium = touch.medium
        customer.last_touch_campaign = touch.campaign
        customer.last_touch_at = placed_at
