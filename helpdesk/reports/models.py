"""What the reports keep between refreshes: per-customer order-history facts and snapshots.

Every report is set-based SQL, but some read the whole order history (1M orders at the
benchmark's medium size), which takes seconds on any database: more than a page may take.
Those figures are computed by the `reports.refresh` job (`helpdesk/reports/snapshot.py`)
into these tables and the pages aggregate the much smaller results, showing when they were
computed. Nothing here is a source of truth: a refresh rebuilds all of it from the orders
and the customer metrics.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from helpdesk.database import Base, utcnow


class ReportCustomerFacts(Base):
    """One row per customer with a counted order: the facts the repeat-purchase and
    acquisition reports aggregate (first and second counted order, net revenue in the first
    90 and 180 days, the touch sources)."""

    __tablename__ = "report_customer_facts"

    customer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("customer.id", ondelete="CASCADE"), primary_key=True
    )
    first_order_at: Mapped[dt.datetime]
    cohort_month: Mapped[str] = mapped_column(String(7))  # 'YYYY-MM' of the first order
    second_order_at: Mapped[dt.datetime | None]
    # Days (with the fraction) from the first to the second counted order.
    second_gap_days: Mapped[float | None]
    # Net of refunds, counted orders placed less than 90 (180) days after the first one.
    net_90: Mapped[Decimal]
    net_180: Mapped[Decimal]
    first_touch_source: Mapped[str | None] = mapped_column(String(120))
    last_touch_source: Mapped[str | None] = mapped_column(String(120))


class ReportSnapshot(Base):
    """A report block computed by the refresh job: its rows as JSON, with when and how long."""

    __tablename__ = "report_snapshot"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[dict]
    computed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(default=0.0)


class ReportDailyCount(Base):
    """A count per day and key of something that only ever grows in the past, e.g. the
    suppressions started per day and reason, up to the refresh's cut-off."""

    __tablename__ = "report_daily_count"

    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[dt.date] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)


class ReportSupportOrder(Base):
    """An order placed within the revenue-after-support window after a ticket was solved:
    one row per (ticket, order), for tickets whose window had closed at the last refresh.

    The support page's "revenue after support" reads these for settled tickets and probes the
    orders live only for tickets solved since (or changed since the refresh)."""

    __tablename__ = "report_support_order"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    order_id: Mapped[int] = mapped_column(
        ForeignKey("order.id", ondelete="CASCADE"), primary_key=True
    )
    assignee_id: Mapped[int] = mapped_column(ForeignKey("agent.id", ondelete="CASCADE"))
    solved_at: Mapped[dt.datetime]
    total: Mapped[Decimal]


Index("ix_report_facts_first_order", ReportCustomerFacts.first_order_at)
Index("ix_report_support_order_solved", ReportSupportOrder.solved_at)
