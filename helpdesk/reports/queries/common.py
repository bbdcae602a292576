"""Helpers shared by the report queries: rows as dicts, counted orders, shares."""

from __future__ import annotations

from sqlalchemy import and_

from helpdesk.customer_context.models import Order
from helpdesk.extensions import db

REPURCHASE_WINDOWS = (30, 60, 90)


def _rows(stmt) -> list[dict]:
    return [dict(row._mapping) for row in db.session.execute(stmt)]


def _counted():
    return and_(Order.cancelled_at.is_(None), Order.test.is_(False))


def _share(part, whole):
    return round(float(part) / float(whole), 4) if whole else None
