"""Segment writes: create, edit, delete (a lead's actions), each validated, flushing only."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from helpdesk.extensions import db
from helpdesk.marketing_bridge.models import Campaign, Segment, SegmentMembership
from helpdesk.marketing_bridge.segments.membership import refresh_segment
from helpdesk.marketing_bridge.segments.schema import DefinitionError, validate_definition


class SegmentError(ValueError):
    """A segment change that cannot be made: `errors` maps field to message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _check_name(name: str, segment_id: int | None) -> None:
    # The exact name too: SQLite's lower() folds ASCII only, so "Ä" would not find "Ä" by it.
    taken = db.session.scalar(
        select(Segment.id).where(
            or_(Segment.name == name, func.lower(Segment.name) == name.lower()),
            Segment.id != (segment_id or 0),
        )
    )
    if taken:
        raise SegmentError({"name": "Another segment already has this name."})


def create_segment(
    *, name: str, description: str, frequency_cap: int | None, definition
) -> Segment:
    """A new rule segment, validated and filled at once."""
    _check_name(name, None)
    try:
        definition = validate_definition(definition)
    except DefinitionError as exc:
        raise SegmentError({f"definition.{k}": v for k, v in exc.errors.items()}) from None
    segment = Segment(
        name=name,
        description=description or None,
        kind="rule",
        definition=definition,
        builtin=False,
        frequency_cap=frequency_cap,
    )
    db.session.add(segment)
    db.session.flush()
    refresh_segment(segment)
    return segment


def update_segment(
    segment: Segment, *, name: str, description: str, frequency_cap: int | None, definition=None
) -> Segment:
    """Edit a segment. RFM segments keep their name and definition (only the cap changes)."""
    if segment.kind == "rfm":
        segment.frequency_cap = frequency_cap
        db.session.flush()
        return segment
    _check_name(name, segment.id)
    if definition is not None:
        try:
            definition = validate_definition(definition)
        except DefinitionError as exc:
            raise SegmentError({f"definition.{k}": v for k, v in exc.errors.items()}) from None
    segment.name = name
    segment.description = description or None
    segment.frequency_cap = frequency_cap
    if definition is not None and definition != segment.definition:
        segment.definition = definition
        db.session.flush()
        refresh_segment(segment)
    db.session.flush()
    return segment


def delete_segment(segment: Segment) -> None:
    """Delete a custom segment that no campaign uses (campaign history keeps its segment)."""
    if segment.builtin:
        raise SegmentError({"form": "Built-in segments cannot be deleted."})
    used = db.session.scalar(
        select(func.count(Campaign.id)).where(Campaign.segment_id == segment.id)
    )
    if used:
        raise SegmentError({"form": f"{used} campaign(s) were sent to this segment; it stays."})
    db.session.execute(
        SegmentMembership.__table__.delete().where(SegmentMembership.segment_id == segment.id)
    )
    db.session.delete(segment)
    db.session.flush()
