"""Message templates: list, edit (lead), reset, and preview with a real customer's data."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from helpdesk.auth.access import role_required
from helpdesk.customer_context.models import Customer
from helpdesk.extensions import db
from helpdesk.marketing_bridge import queries
from helpdesk.marketing_bridge.flows.context import preview_context
from helpdesk.marketing_bridge.models import MessageTemplate
from helpdesk.marketing_bridge.templates_store import (
    DEFAULTS,
    DEFAULTS_BY_KEY,
    VARIABLES,
    TemplateError,
    render_text,
    reset_template,
    unknown_variables,
    update_template,
)
from helpdesk.marketing_bridge.views import bp, id_param, is_htmx


def _stored(key: str) -> MessageTemplate | None:
    return db.session.scalar(select(MessageTemplate).where(MessageTemplate.key == key))


def _template_or_404(key: str):
    """The stored row, else the shipped default (read-only until first saved)."""
    stored = _stored(key)
    if stored is not None:
        return stored
    return DEFAULTS_BY_KEY.get(key) or abort(404)


def _customer_from(value: str | None) -> tuple[Customer | None, str | None]:
    """A customer by id or email (the preview's "with customer" box)."""
    value = (value or "").strip()
    if not value:
        return None, None
    if value.isdigit():
        wanted = id_param(value)
        customer = db.session.get(Customer, wanted) if wanted is not None else None
    else:
        customer = db.session.scalar(select(Customer).where(Customer.email == value.lower()))
    if customer is None:
        return None, f"No customer {value!r}."
    return customer, None


def _default_customer() -> Customer | None:
    """A customer with an order, for a preview that shows real data out of the box."""
    from helpdesk.customer_context.models import Order

    return db.session.scalar(
        select(Customer)
        .join(Order, Order.customer_id == Customer.id)
        .order_by(Order.placed_at.desc())
        .limit(1)
    )


def _preview(subject: str, body: str, customer: Customer | None) -> dict | None:
    if customer is None:
        return None
    context = preview_context(customer, agent=current_user)
    return {
        "customer": customer,
        "subject": " ".join(render_text(subject, context).split()),
        "body": render_text(body, context).strip(),
        "unknown": unknown_variables(subject + "\n" + body),
    }


@bp.get("/templates")
@role_required("agent")
def templates():
    stored = {t.key: t for t in queries.templates_list()}
    rows = [stored.get(d.key, d) for d in DEFAULTS]
    rows += [t for key, t in stored.items() if key not in DEFAULTS_BY_KEY]
    return render_template(
        "marketing/templates.html",
        rows=rows,
        usage=queries.template_usage(),
        edited={k for k, t in stored.items() if _is_edited(t)},
    )


def _is_edited(template) -> bool:
    default = DEFAULTS_BY_KEY.get(template.key)
    return default is not None and (
        template.subject != default.subject or template.body.strip() != default.body.strip()
    )


def _page(template, form: dict, errors: dict, status: int = 200):
    customer, customer_error = _customer_from(request.values.get("customer"))
    if customer is None and customer_error is None:
        customer = _default_customer()
    return (
        render_template(
            "marketing/template.html",
            template=template,
            form=form,
            errors=errors if not customer_error else {**errors, "customer": customer_error},
            variables=VARIABLES,
            preview=_preview(form["subject"], form["body"], customer),
            customer_value=request.values.get("customer", ""),
            edited=_is_edited(template),
        ),
        status,
    )


@bp.get("/templates/<key>")
@role_required("agent")
def template(key: str):
    item = _template_or_404(key)
    return _page(item, {"subject": item.subject, "body": item.body}, {})


@bp.post("/templates/<key>")
@role_required("lead")
def template_save(key: str):
    item = _template_or_404(key)
    form = {"subject": request.form.get("subject", ""), "body": request.form.get("body", "")}
    if not isinstance(item, MessageTemplate):
        default = item
        item = MessageTemplate(
            key=default.key,
            name=default.name,
            kind=default.kind,
            subject=default.subject,
            body=default.body,
        )
        db.session.add(item)
    try:
        update_template(item, subject=form["subject"], body=form["body"])
    except TemplateError as exc:
        db.session.rollback()
        return _page(_template_or_404(key), form, exc.errors, 422)
    db.session.commit()
    flash(f"Saved the {item.name} template. New messages use it from now on.", "success")
    return redirect(
        url_for("marketing.template", key=key, customer=request.form.get("customer") or None)
    )


@bp.post("/templates/<key>/reset")
@role_required("lead")
def template_reset(key: str):
    item = _stored(key) or abort(404)
    try:
        reset_template(item)
    except TemplateError as exc:
        db.session.rollback()
        flash(" ".join(exc.errors.values()), "error")
        return redirect(url_for("marketing.template", key=key))
    db.session.commit()
    flash("Restored the shipped text.", "success")
    return redirect(url_for("marketing.template", key=key))


@bp.post("/templates/<key>/preview")
@role_required("lead")
def template_preview(key: str):
    """Live preview of unsaved text (htmx), or the whole page without JavaScript."""
    item = _template_or_404(key)
    form = {"subject": request.form.get("subject", ""), "body": request.form.get("body", "")}
    if not is_htmx():
        return _page(item, form, {})
    customer, error = _customer_from(request.form.get("customer"))
    if customer is None and error is None:
        customer = _default_customer()
    return render_template(
        "marketing/_template_preview.html",
        preview=_preview(form["subject"], form["body"], customer),
        errors={"customer": error} if error else {},
    )
