"""The shared suppression table and its change log, segments, flows, campaigns and the outbox."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.database import Base, utcnow

if TYPE_CHECKING:
    from helpdesk.customer_context.models import Customer

SUPPRESSION_REASONS = (
    "open_ticket",
    "refund_pending",
    "negative_review",
    "manual",
    "unsubscribed",
    "bounced",
)
MESSAGE_KINDS = ("transactional", "behavioural", "promotional")
MESSAGE_STATUSES = ("scheduled", "sending", "sent", "suppressed", "capped", "skipped", "failed")


class Suppression(Base):
    """One reason a customer must not get marketing. Active while not lifted and not expired."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    email: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(20))
    source_ref: Mapped[str | None] = mapped_column(String(120))  # "ticket:12", "review:4"
    note: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    customer: Mapped[Customer | None] = relationship()
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None]
    lifted_at: Mapped[dt.datetime | None]
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    # Why the row ended: "ticket:12 solved", "expired", "refund:3 recorded", "lifted by lead".
    lift_cause: Mapped[str | None] = mapped_column(String(120))

    @property
    def is_active(self) -> bool:
        """Not lifted and not past its expiry (the expiry job sets lifted_at later)."""
        return self.lifted_at is None and (self.expires_at is None or self.expires_at > utcnow())


class SuppressionChange(Base):
    """The ESP feed's log: replaying it from seq 0 yields exactly the active set."""

    __tablename__ = "suppression_change"

    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    action: Mapped[str] = mapped_column(String(12))  # suppressed | lifted
    reasons: Mapped[list] = mapped_column(JSON, default=list)  # active reasons after the change
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # What caused the change ("ticket:12 opened", "expired", "email changed"): audit only.
    cause: Mapped[str | None] = mapped_column(String(160))


class EmailEvent(Base):
    """An engagement or deliverability event reported by the ESP (open, click, bounce, ...)."""

    __tablename__ = "email_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    email: Mapped[str] = mapped_column(String(254))
    type: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str | None] = mapped_column(String(120))
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Segment(Base):
    __tablename__ = "segment"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8), default="rule")  # rfm | rule
    definition: Mapped[dict] = mapped_column(JSON, default=dict)
    builtin: Mapped[bool] = mapped_column(default=False)
    frequency_cap: Mapped[int | None]  # promotional messages per cap window, overrides default
    member_count: Mapped[int] = mapped_column(default=0)
    refreshed_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SegmentMembership(Base):
    """A stay of a customer in a segment; the current members have `exited_at` NULL."""

    __tablename__ = "segment_membership"

    id: Mapped[int] = mapped_column(primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segment.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id", ondelete="CASCADE"))
    entered_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    exited_at: Mapped[dt.datetime | None]


class Flow(Base):
    """An automated sequence (post-purchase, cart recovery, winback, tier welcome...)."""

    __tablename__ = "flow"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(default=True)
    holdout_percent: Mapped[float] = mapped_column(default=0.0)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)


class FlowEnrollment(Base):
    __tablename__ = "flow_enrollment"
    __table_args__ = (UniqueConstraint("flow_id", "trigger_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow_id: Mapped[int] = mapped_column(ForeignKey("flow.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    trigger_ref: Mapped[str] = mapped_column(String(120))  # "order:1043", "checkout:abc"
    branch: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[int] = mapped_column(default=0)
    next_run_at: Mapped[dt.datetime | None]
    state: Mapped[str] = mapped_column(String(16), default="active")  # active|completed|exited
    holdout: Mapped[bool] = mapped_column(default=False)
    exit_reason: Mapped[str | None] = mapped_column(String(120))
    enrolled_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    # The steps planned at enrolment: [{"step", "template", "kind", "at"}]; a holdout
    # enrolment keeps its plan (what it would have received) but gets no messages.
    plan: Mapped[list] = mapped_column(JSON, default=list)
    # The first order placed while enrolled (the flow's conversion; holdout ones count too).
    converted_order_id: Mapped[int | None] = mapped_column(ForeignKey("order.id"))
    converted_at: Mapped[dt.datetime | None]
    # High-value cart recovery: the helpdesk task opened for the named team member.
    task_ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    sender_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))

    flow: Mapped[Flow] = relationship()


class MessageTemplate(Base):
    __tablename__ = "message_template"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Campaign(Base):
    """A promotional message a lead sends to a segment (one outbox row per recipient)."""

    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    segment_id: Mapped[int] = mapped_column(ForeignKey("segment.id"))
    template_key: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255), default="")
    body: Mapped[str] = mapped_column(Text, default="")  # the {{campaign.body}} of the template
    status: Mapped[str] = mapped_column(String(16), default="draft")  # draft | sent
    exclude_vip: Mapped[bool] = mapped_column(default=True)  # mass discount: VIPs left out
    send_after: Mapped[dt.datetime | None]  # None: as soon as it is sent
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[dt.datetime | None]

    segment: Mapped[Segment] = relationship()


class OutboundMessage(Base):
    """Every message to a customer, whatever its kind, passes through here and the send gate."""

    __tablename__ = "outbound_message"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customer.id"))
    email: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(16))
    template: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str | None] = mapped_column(Text)
    from_name: Mapped[str | None] = mapped_column(String(120))
    headers: Mapped[dict] = mapped_column(JSON, default=dict)  # e.g. In-Reply-To for replies
    variables: Mapped[dict] = mapped_column(JSON, default=dict)
    send_after: Mapped[dt.datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    attempts: Mapped[int] = mapped_column(default=0)
    lease_until: Mapped[dt.datetime | None]
    # The dispatcher run that claimed the row: a run only sends rows it still owns.
    lease_owner: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(120))
    idempotency_key: Mapped[str] = mapped_column(String(120), unique=True)
    reason: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("ticket.id"))
    flow_enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("flow_enrollment.id"))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaign.id"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]

    customer: Mapped[Customer | None] = relationship()


Index("ix_suppression_email_active", Suppression.email, Suppression.lifted_at)
Index("ix_suppression_customer_reason", Suppression.customer_id, Suppression.reason)
Index("ix_suppression_expires", Suppression.expires_at)
Index("ix_suppression_change_email", SuppressionChange.email)
# The suppression package's read paths: the feed walks active rows by email (a partial index
# on PostgreSQL), an email's last published state is its highest seq, a customer's history.
Index(
    "ix_suppression_active_email_reason",
    Suppression.email,
    Suppression.reason,
    postgresql_where=Suppression.lifted_at.is_(None),
)
Index("ix_suppression_change_email_seq", SuppressionChange.email, SuppressionChange.seq)
Index("ix_suppression_change_customer_seq", SuppressionChange.customer_id, SuppressionChange.seq)
Index("ix_email_event_email_at", EmailEvent.email, EmailEvent.at)
Index("ix_email_event_customer_type_at", EmailEvent.customer_id, EmailEvent.type, EmailEvent.at)
Index("ix_membership_segment_current", SegmentMembership.segment_id, SegmentMembership.exited_at)
Index("ix_membership_customer", SegmentMembership.customer_id, SegmentMembership.segment_id)
Index("ix_enrollment_due", FlowEnrollment.state, FlowEnrollment.next_run_at)
Index("ix_outbound_due", OutboundMessage.status, OutboundMessage.send_after)
Index(
    "ix_outbound_customer_kind_sent",
    OutboundMessage.customer_id,
    OutboundMessage.kind,
    OutboundMessage.sent_at,
)
# The marketing report's recipients of the period: an index-only range of the sent messages
# (the rows themselves are wide: each holds its rendered body).
Index(
    "ix_outbound_sent",
    OutboundMessage.status,
    OutboundMessage.sent_at,
    OutboundMessage.kind,
    OutboundMessage.customer_id,
)
# The marketing report's messages created since the last refresh (and per week on SQLite).
Index(
    "ix_outbound_created", OutboundMessage.created_at, OutboundMessage.kind, OutboundMessage.status
)
Index("ix_outbound_ticket", OutboundMessage.ticket_id)
# Partial: campaign and transactional messages have no enrolment, and SQLite's statistics
# count their NULLs as one value, making a full index look useless for a flow's look-ups.
Index(
    "ix_outbound_enrollment",
    OutboundMessage.flow_enrollment_id,
    sqlite_where=OutboundMessage.flow_enrollment_id.is_not(None),
    postgresql_where=OutboundMessage.flow_enrollment_id.is_not(None),
)
Index("ix_outbound_campaign", OutboundMessage.campaign_id)
Index("ix_outbound_template_status", OutboundMessage.template, OutboundMessage.status)
Index("ix_enrollment_flow_state", FlowEnrollment.flow_id, FlowEnrollment.state)
# reports.suppressions_over_time: one index-only range count per (reason, week)
Index("ix_suppression_reason_started", Suppression.reason, Suppression.started_at)
