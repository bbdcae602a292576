"""Tickets, their messages and audit trail, macros, SLA policies and who is viewing what."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import Computed, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.database import Base, utcnow

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.customer_context.models import Customer

STATUSES = ("new", "open", "pending", "solved", "closed")
OPEN_STATUSES = ("new", "open", "pending")
PRIORITIES = ("low", "normal", "high", "urgent")
PRIORITY_RANK = {"low": 1, "normal": 2, "high": 3, "urgent": 4}
CATEGORIES = ("complaint", "refund", "return", "shipping", "question", "other")
CHANNELS = ("email", "web", "api", "phone")
TEAMS = ("agents", "leads")

# Sorts after every real deadline. Written in SQLAlchemy's SQLite DATETIME storage format, which
# PostgreSQL also reads as a timestamp, so one expression serves both engines.
SLA_NEVER_DUE = dt.datetime(9999, 12, 31)
_NEVER = "'9999-12-31 00:00:00.000000'"
_FIRST = (
    f"CASE WHEN first_responded_at IS NULL THEN COALESCE(first_response_due_at, {_NEVER})"
    f" ELSE {_NEVER} END"
)
_RESOLUTION = (
    f"CASE WHEN solved_at IS NULL THEN COALESCE(resolution_due_at, {_NEVER}) ELSE {_NEVER} END"
)
SLA_DUE_SQL = (
    f"CASE WHEN status NOT IN ('new', 'open', 'pending') OR sla_paused_at IS NOT NULL THEN {_NEVER}"
    f" WHEN {_FIRST} <= {_RESOLUTION} THEN {_FIRST} ELSE {_RESOLUTION} END"
)


class Ticket(Base):
    __tablename__ = "ticket"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    subject: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="new")
    priority: Mapped[str] = mapped_column(String(16), default="normal")
    # Numeric mirror of priority so the queue can sort by it with an index.
    priority_rank: Mapped[int] = mapped_column(default=2)
    category: Mapped[str | None] = mapped_column(String(16))
    category_source: Mapped[str | None] = mapped_column(String(16))  # classifier | agent | api
    channel: Mapped[str] = mapped_column(String(16), default="email")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    team: Mapped[str] = mapped_column(String(16), default="agents")
    related_order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"))
    # The bad review this ticket follows up, if any: solving it lifts that review's suppression.
    review_id: Mapped[int | None] = mapped_column(ForeignKey("review.id"))
    escalated: Mapped[bool] = mapped_column(default=False)
    first_response_due_at: Mapped[dt.datetime | None]
    resolution_due_at: Mapped[dt.datetime | None]
    first_responded_at: Mapped[dt.datetime | None]
    sla_paused_at: Mapped[dt.datetime | None]  # set while pending: the clock is stopped
    # Total time spent pending so far: deadlines are the policy targets plus this.
    sla_paused_seconds: Mapped[int] = mapped_column(default=0)
    solved_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    # The queue's "SLA due" sort key, kept by the database from the columns above: the earliest
    # unmet deadline of a running clock (`sla.next_deadline`), else SLA_NEVER_DUE (solved,
    # closed, paused or no target), so the sort is an index walk. Never written by the app.
    # STORED said explicitly: PostgreSQL has only STORED before 18, and would default to
    # VIRTUAL from 18. (A SQLite database built by the migrations has it VIRTUAL, as SQLite
    # cannot ADD a STORED column; it reads and indexes the same.)
    sla_due_at: Mapped[dt.datetime | None] = mapped_column(Computed(SLA_DUE_SQL, persisted=True))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    # A customer reply to a closed ticket opens a new ticket that points back to the old one.
    follow_up_of_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    last_message_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    messages: Mapped[list[TicketMessage]] = relationship(
        back_populates="ticket", order_by="TicketMessage.id", foreign_keys="TicketMessage.ticket_id"
    )
    customer: Mapped[Customer] = relationship()
    assignee: Mapped[Agent | None] = relationship(foreign_keys=[assignee_id])
    tags: Mapped[list[TicketTag]] = relationship(
        cascade="all, delete-orphan", order_by="TicketTag.tag", lazy="selectin"
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def tag_names(self) -> list[str]:
        return sorted(t.tag for t in self.tags)


class TicketTag(Base):
    __tablename__ = "ticket_tag"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)


class TicketMessage(Base):
    __tablename__ = "ticket_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    author_type: Mapped[str] = mapped_column(String(16))  # customer | agent | system
    author_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str | None] = mapped_column(Text)  # sanitised with nh3, safe to render
    internal: Mapped[bool] = mapped_column(default=False)
    email_message_id: Mapped[str | None] = mapped_column(String(255), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(255))
    # Set when the message was moved here by a merge: the ticket it was written on.
    merged_from_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    ticket: Mapped[Ticket] = relationship(back_populates="messages", foreign_keys=[ticket_id])
    author_agent: Mapped[Agent | None] = relationship()


class TicketEvent(Base):
    """Audit trail: one row per field change, message or action on a ticket."""

    __tablename__ = "ticket_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(32))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    actor_label: Mapped[str | None] = mapped_column(String(120))  # "system", "rule: VIP complaint"
    # Set when the event was moved here by a merge: the ticket it happened on.
    merged_from_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    actor: Mapped[Agent | None] = relationship()


class Macro(Base):
    __tablename__ = "macro"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(default=True)
    usage_count: Mapped[int] = mapped_column(default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SlaPolicy(Base):
    """Targets in minutes by priority, optionally narrowed to a customer tier."""

    __tablename__ = "sla_policy"

    id: Mapped[int] = mapped_column(primary_key=True)
    priority: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(16))  # None: any tier
    first_response_minutes: Mapped[int]
    resolution_minutes: Mapped[int]


class TicketPresence(Base):
    """Who is looking at or typing in a ticket right now (refreshed by polling)."""

    __tablename__ = "ticket_presence"

    ticket_id: Mapped[int] = mapped_column(
        ForeignKey("ticket.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[int] = mapped_column(ForeignKey("agent.id"), primary_key=True)
    replying: Mapped[bool] = mapped_column(default=False)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    agent: Mapped[Agent] = relationship()


Index("ix_ticket_status_created", Ticket.status, Ticket.created_at, Ticket.id)
Index("ix_ticket_assignee_status", Ticket.assignee_id, Ticket.status, Ticket.id)
Index("ix_ticket_customer_status", Ticket.customer_id, Ticket.status)
Index("ix_ticket_status_priority", Ticket.status, Ticket.priority_rank, Ticket.id)
Index("ix_ticket_status_frt_due", Ticket.status, Ticket.first_response_due_at)
Index("ix_ticket_escalated_status", Ticket.escalated, Ticket.status)
# Partial (non-NULL only): almost every ticket has neither link, and SQLite's statistics count
# the NULLs as one value, so a full index looked useless to its planner and the ticket page's
# "does anything link here?" scanned the table (~19 ms at 50k tickets). Every look-up is an
# equality, which implies IS NOT NULL, so both databases use the partial index.
Index(
    "ix_ticket_merged_into",
    Ticket.merged_into_id,
    sqlite_where=Ticket.merged_into_id.is_not(None),
    postgresql_where=Ticket.merged_into_id.is_not(None),
)
Index("ix_ticket_created", Ticket.created_at, Ticket.id)  # queue newest/oldest, any view
Index(  # related_tickets on the ticket page; partial as above
    "ix_ticket_follow_up_of",
    Ticket.follow_up_of_id,
    sqlite_where=Ticket.follow_up_of_id.is_not(None),
    postgresql_where=Ticket.follow_up_of_id.is_not(None),
)
Index("ix_ticket_priority_created", Ticket.priority_rank.desc(), Ticket.created_at, Ticket.id)
Index("ix_ticket_related_order", Ticket.related_order_id)
Index("ix_ticket_sla_due", Ticket.sla_due_at, Ticket.id)  # queue sort=sla, any view
Index("ix_ticket_tag_tag", TicketTag.tag, TicketTag.ticket_id)
Index("ix_ticket_message_ticket", TicketMessage.ticket_id, TicketMessage.id)
Index("ix_ticket_event_ticket", TicketEvent.ticket_id, TicketEvent.id)
Index("ix_sla_policy_priority_tier", SlaPolicy.priority, SlaPolicy.tier, unique=True)
# reports.agent_workload: per-agent counts answered by index ranges
Index("ix_ticket_assignee_solved", Ticket.assignee_id, Ticket.solved_at)
# The support report's live revenue after support: tickets solved or changed since the last
# reports.refresh (reports/snapshot.py).
Index("ix_ticket_solved", Ticket.solved_at)
Index("ix_ticket_updated", Ticket.updated_at)
Index(
    "ix_ticket_message_author_created",
    TicketMessage.author_agent_id,
    TicketMessage.author_type,
    TicketMessage.internal,
    TicketMessage.created_at,
)
