"""Segment pages: list with counts, members (paginated, CSV export), builder, refresh."""

from __future__ import annotations

import json
import re

from flask import abort, flash, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select

from helpdesk.auth.access import role_required
from helpdesk.customer_context.models import Customer
from helpdesk.exports import csv_response
from helpdesk.extensions import db
from helpdesk.marketing_bridge import queries
from helpdesk.marketing_bridge.models import Segment
from helpdesk.marketing_bridge.schemas import SegmentForm, flat_errors
from helpdesk.marketing_bridge.segments import compile_definition, refresh_segment
from helpdesk.marketing_bridge.segments.builder import (
    EMPTY_ROW,
    definition_from_rows,
    rows_from_definition,
    rows_from_form,
)
from helpdesk.marketing_bridge.segments.schema import (
    CHOICES,
    FIELDS,
    OPS_BY_TYPE,
    DefinitionError,
    describe,
    validate_definition,
)
from helpdesk.marketing_bridge.segments.services import (
    SegmentError,
    create_segment,
    delete_segment,
    update_segment,
)
from helpdesk.marketing_bridge.views import bp, id_param

ROW_ERROR = re.compile(r"^definition\.(?:all|any)\[(\d+)\](?:\.(\w+))?")
PREVIEW_SAMPLE = 10


@bp.get("/segments")
@role_required("agent")
def segments():
    return render_template(
        "marketing/segments.html",
        segments=queries.segments_list(),
        describe=describe,
    )


@bp.get("/segments/<int:segment_id>")
@role_required("agent")
def segment(segment_id: int):
    item = db.session.get(Segment, segment_id) or abort(404)
    page = min(id_param(request.args.get("page")) or 1, 100_000)
    rows, total = queries.segment_members(item.id, page=page)
    pages = max((total + queries.PAGE_SIZE - 1) // queries.PAGE_SIZE, 1)
    return render_template(
        "marketing/segment.html",
        segment=item,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        movement=queries.segment_movement(item.id),
        description=describe(item.definition),
    )


@bp.get("/segments/<int:segment_id>/members.csv")
@role_required("agent")
def segment_export(segment_id: int):
    item = db.session.get(Segment, segment_id) or abort(404)
    slug = re.sub(r"[^a-z0-9]+", "-", item.name.lower()).strip("-") or "segment"
    rows = (
        [
            r.id,
            r.external_id,
            r.email,
            r.first_name,
            r.last_name,
            r.accepts_marketing,
            r.orders_count,
            r.total_spent,
            r.last_order_at.isoformat() if r.last_order_at else None,
            r.rfm_segment,
            r.tier,
            r.clv,
            r.entered_at.isoformat() if r.entered_at else None,
        ]
        for r in queries.iter_segment_members(item.id)
    )
    return csv_response(f"segment-{item.id}-{slug}.csv", queries.MEMBER_EXPORT_COLUMNS, rows)


def _form_state(segment: Segment | None) -> dict:
    """What the edit form shows: posted values when re-rendering, else the segment's."""
    form = request.form
    if request.method == "POST":
        mode = form.get("mode") if form.get("mode") in ("builder", "json") else "builder"
        return {
            "name": form.get("name", ""),
            "description": form.get("description", ""),
            "frequency_cap": form.get("frequency_cap", ""),
            "mode": mode,
            "match": form.get("match") if form.get("match") in ("all", "any") else "all",
            "rows": rows_from_form(form),
            "definition_json": form.get("definition", ""),
        }
    definition = segment.definition if segment else {"all": [dict(EMPTY_ROW, value="2")]}
    flat = rows_from_definition(definition) if segment else ("all", [dict(EMPTY_ROW, value="2")])
    return {
        "name": segment.name if segment else "",
        "description": (segment.description or "") if segment else "",
        "frequency_cap": ""
        if not segment or segment.frequency_cap is None
        else segment.frequency_cap,
        "mode": "builder" if flat else "json",
        "match": flat[0] if flat else "all",
        "rows": flat[1] if flat else [],
        "definition_json": json.dumps(definition, indent=2),
    }


def _definition(state: dict, errors: dict):
    if state["mode"] == "json":
        try:
            return json.loads(state["definition_json"] or "null")
        except json.JSONDecodeError as exc:
            errors["definition.definition"] = f"Not valid JSON: {exc.msg} (line {exc.lineno})."
            return None
    return definition_from_rows(state["match"], state["rows"])


def _row_errors(errors: dict) -> dict[int, dict[str, str]]:
    """Errors by builder row and part ("value", "days", "op", ...)."""
    by_row: dict[int, dict[str, str]] = {}
    for path, message in errors.items():
        match = ROW_ERROR.match(path)
        if match:
            part = match.group(2) or "field"
            if path.endswith(".category"):
                part = "category"
            elif ".days" in path:
                part = "days"
            by_row.setdefault(int(match.group(1)), {})[part] = message
    return by_row


def _render_form(segment, state, errors, preview=None, status=200):
    return (
        render_template(
            "marketing/segment_form.html",
            segment=segment,
            state=state,
            errors=errors,
            row_errors=_row_errors(errors),
            preview=preview,
            fields=FIELDS,
            ops_by_type=OPS_BY_TYPE,
            choices=CHOICES,
        ),
        status,
    )


def _preview(definition) -> dict:
    select_ids = compile_definition(definition)
    ids = list(db.session.scalars(select_ids.limit(PREVIEW_SAMPLE)))
    count = db.session.scalar(select(func.count()).select_from(select_ids.subquery()))
    sample = list(db.session.scalars(select(Customer).where(Customer.id.in_(ids)))) if ids else []
    return {"count": int(count or 0), "sample": sample, "description": describe(definition)}


def _handle_form(segment: Segment | None):
    state = _form_state(segment)
    if request.method == "GET":
        return _render_form(segment, state, {})
    action = request.form.get("action", "save")
    errors: dict[str, str] = {}
    if action == "add":
        state["rows"].append(dict(EMPTY_ROW))
        return _render_form(segment, state, errors)
    if action in ("to_json", "to_builder"):
        definition = _definition(state, errors)
        if action == "to_json" and definition is not None:
            state["definition_json"] = json.dumps(definition, indent=2)
            state["mode"] = "json"
        elif action == "to_builder" and definition is not None:
            flat = rows_from_definition(definition)
            if flat is None:
                errors["definition.definition"] = (
                    "Nested groups can only be edited as JSON; flatten them to use the builder."
                )
            else:
                state["match"], state["rows"] = flat
                state["mode"] = "builder"
        return _render_form(segment, state, errors, status=422 if errors else 200)

    try:
        values = SegmentForm().load({k: state[k] for k in ("name", "description", "frequency_cap")})
    except ValidationError as exc:
        values, errors = {}, flat_errors(exc)
    definition = None
    locked = segment is not None and segment.kind == "rfm"
    if not locked:
        definition = _definition(state, errors)
        # Validated whenever it parsed, `null` and an empty box included (refused, not None).
        if "definition.definition" not in errors:
            try:
                definition = validate_definition(definition)
            except DefinitionError as exc:
                errors.update({f"definition.{k}": v for k, v in exc.errors.items()})
    if errors:
        return _render_form(segment, state, errors, status=422)
    if action == "preview":
        return _render_form(
            segment, state, errors, preview=_preview(definition or segment.definition)
        )
    try:
        if segment is None:
            segment = create_segment(definition=definition, **values)
        else:
            update_segment(segment, definition=definition, **values)
    except SegmentError as exc:
        db.session.rollback()
        return _render_form(segment, state, exc.errors, status=422)
    db.session.commit()
    flash(f"Saved {segment.name}: {segment.member_count} members now.", "success")
    return redirect(url_for("marketing.segment", segment_id=segment.id))


@bp.route("/segments/new", methods=["GET", "POST"])
@role_required("lead")
def new_segment():
    return _handle_form(None)


@bp.route("/segments/<int:segment_id>/edit", methods=["GET", "POST"])
@role_required("lead")
def edit_segment(segment_id: int):
    item = db.session.get(Segment, segment_id) or abort(404)
    return _handle_form(item)


@bp.post("/segments/<int:segment_id>/refresh")
@role_required("lead")
def segment_refresh(segment_id: int):
    item = db.session.get(Segment, segment_id) or abort(404)
    try:
        result = refresh_segment(item)
    except DefinitionError as exc:
        db.session.rollback()
        flash(f"This segment's definition is invalid: {exc}", "error")
        return redirect(url_for("marketing.segment", segment_id=segment_id))
    db.session.commit()
    flash(
        f"Refreshed: {result['entered']} entered, {result['exited']} left, "
        f"{result['members']} members.",
        "success",
    )
    return redirect(url_for("marketing.segment", segment_id=item.id))


@bp.post("/segments/<int:segment_id>/delete")
@role_required("lead")
def segment_delete(segment_id: int):
    item = db.session.get(Segment, segment_id) or abort(404)
    name = item.name
    try:
        delete_segment(item)
    except SegmentError as exc:
        db.session.rollback()
        flash(" ".join(exc.errors.values()), "error")
        return redirect(url_for("marketing.segment", segment_id=segment_id))
    db.session.commit()
    flash(f"Deleted {name}.", "success")
    return redirect(url_for("marketing.segments"))
