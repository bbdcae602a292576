"""Escalation rules, the escalations they raise, and recovery gestures."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from helpdesk.database import Base, utcnow

if TYPE_CHECKING:
    from helpdesk.auth.models import Agent
    from helpdesk.tickets.models import Ticket

ESCALATION_STATUSES = ("open", "acknowledged", "resolved")
GESTURE_KINDS = ("points", "discount_code")
GESTURE_STATUSES = ("proposed", "pending_approval", "applied", "rejected")


class EscalationRule(Base):
    """Ordered; the first active rule whose conditions match wins. Definitions are JSON."""

    __tablename__ = "escalation_rule"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(default=100)
    active: Mapped[bool] = mapped_column(default=True)
    builtin: Mapped[bool] = mapped_column(default=False)
    description: Mapped[str | None] = mapped_column(Text)
    conditions: Mapped[dict] = mapped_column(JSON, default=dict)
    actions: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Escalation(Base):
    __tablename__ = "escalation"
    # The guard: a rule fires at most once per ticket.
    __table_args__ = (UniqueConstraint("ticket_id", "rule_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("escalation_rule.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(40))  # the signal that caused it
    reason: Mapped[str] = mapped_column(Text)
    facts: Mapped[dict] = mapped_column(JSON, default=dict)
    value_at_risk: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    ack_due_at: Mapped[dt.datetime | None]
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    resolved_at: Mapped[dt.datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    renotified_at: Mapped[dt.datetime | None]
    overdue: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    rule: Mapped[EscalationRule | None] = relationship()
    ticket: Mapped[Ticket] = relationship()
    lead: Mapped[Agent | None] = relationship(foreign_keys=[lead_id])
    acknowledged_by: Mapped[Agent | None] = relationship(foreign_keys=[acknowledged_by_id])
    resolved_by: Mapped[Agent | None] = relationship(foreign_keys=[resolved_by_id])

    @property
    def is_open(self) -> bool:
        """Not yet resolved (open or acknowledged): no other rule stacks on the ticket."""
        return self.status != "resolved"


class RecoveryGesture(Base):
    """A goodwill credit (loyalty points or a discount code) proposed for an escalated ticket."""

    __tablename__ = "recovery_gesture"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("ticket.id", ondelete="CASCADE"), index=True)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalation.id"), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # points | discount_code
    value: Mapped[Decimal] = mapped_column(default=Decimal("0"))  # in store currency
    points: Mapped[int | None]
    code: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="proposed")
    proposed_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    applied_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    rejected_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    # The agent whose apply went above the approval limit and asked a lead instead.
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("agent.id"))
    # How the value was sized: {"of": "clv", "base": "2140.00", "percent": 5, "min": 5, ...}
    basis: Mapped[dict] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    decision_note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None]
    applied_at: Mapped[dt.datetime | None]

    escalation: Mapped[Escalation | None] = relationship()
    proposed_by: Mapped[Agent | None] = relationship(foreign_keys=[proposed_by_id])
    approved_by: Mapped[Agent | None] = relationship(foreign_keys=[approved_by_id])
    applied_by: Mapped[Agent | None] = relationship(foreign_keys=[applied_by_id])
    rejected_by: Mapped[Agent | None] = relationship(foreign_keys=[rejected_by_id])
    requested_by: Mapped[Agent | None] = relationship(foreign_keys=[requested_by_id])


Index("ix_escalation_status_created", Escalation.status, Escalation.created_at)
Index("ix_escalation_ticket", Escalation.ticket_id)
Index("ix_escalation_rule_position", EscalationRule.active, EscalationRule.position)
Index("ix_escalation_status_ack_due", Escalation.status, Escalation.ack_due_at)
Index("ix_recovery_gesture_status", RecoveryGesture.status, RecoveryGesture.created_at)
