"""The ticket page and its htmx partials: composer, macros, fields, merge, sidebar, presence."""

from __future__ import annotations

import json

from flask import (
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup

from helpdesk.auth.access import role_required
from helpdesk.auth.models import Agent
from helpdesk.extensions import db
from helpdesk.tickets import page as ticket_page
from helpdesk.tickets import queries, services
from helpdesk.tickets.macros import MacroRender, render_macro
from helpdesk.tickets.models import TEAMS, Ticket
from helpdesk.tickets.queue import (
    assignable_agents,
    sla_display,
)
from helpdesk.tickets.services import TicketError
from helpdesk.tickets.views import bp, current_agent, fragments, is_htmx

COMPOSER_MODES = ("reply", "note")
THEN_STATUSES = ("pending", "solved")
EDITABLE_FIELDS = ("status", "priority", "category", "assignee", "team", "order", "tags", "untag")


# --- the ticket page -----------------------------------------------------------------------------


def _load_ticket(ticket_id: int) -> Ticket:
    ticket = queries.get_ticket(ticket_id)
    if ticket is None:
        abort(404)
    return ticket


def _ticket_context(ticket: Ticket, **extra) -> dict:
    """What the ticket page and its partials render (a fixed number of statements)."""
    me = current_agent()
    context = {
        "ticket": ticket,
        "sla": sla_display(ticket),
        "agents": assignable_agents(),
        "orders": ticket_page.order_choices(ticket.customer_id, ticket.related_order_id),
        "errors": {},
        "composer": {"mode": "reply", "body": "", "macro_id": "", "errors": {}},
        "merge": {"target_id": "", "errors": {}},
        "me": me,
    }
    context.update(extra)
    return context


def _full_ticket_context(
    ticket: Ticket, *, has_links: bool = True, others_present: bool = True, **extra
) -> dict:
    """The ticket page's context. `has_links` / `others_present` False (known from the
    ticket's own statement: `page.ticket_for_page`) skip reads that would find nothing."""
    context = _ticket_context(ticket, **extra)
    context.update(
        messages=ticket_page.thread_messages(ticket.id),
        events=ticket_page.ticket_events(ticket.id),
        present=ticket_page.others_present(ticket.id, context["me"].id) if others_present else [],
        macros=queries.macro_choices(ticket.category),
        related=queries.related_tickets(ticket) if has_links else queries.no_related_tickets(),
    )
    return context


@bp.get("/tickets/<int:ticket_id>")
@role_required("agent")
def show(ticket_id: int):
    """The ticket: thread, composer, fields, audit trail, SLA; the sidebar loads after."""
    found = ticket_page.ticket_for_page(ticket_id, current_agent().id)
    if found is None:
        abort(404)
    ticket = found.ticket
    context = _full_ticket_context(
        ticket, has_links=found.has_links, others_present=found.others_present
    )
    macro_id = request.args.get("macro_id", "")
    if macro_id:  # the macro picker without JavaScript: preview, then insert
        macro = _active_macro(macro_id)
        if macro is not None:
            context["macro"] = macro
            context["preview"] = _preview(macro, ticket)
            if request.args.get("insert"):
                context["composer"].update(body=context["preview"].text, macro_id=macro.id)
    return render_template("tickets/show.html", **context)


def _side_updates(ticket: Ticket, context: dict) -> list[str]:
    """Fragments refreshed after any change: header, fields and audit trail (out of band)."""
    context = dict(context, oob=True)
    context.setdefault("events", ticket_page.ticket_events(ticket.id))
    return [
        render_template("tickets/_fields.html", **context),
        render_template("tickets/_ticket_head.html", **context),
        render_template("tickets/_audit.html", **context),
    ]


def _reload(ticket_id: int) -> Ticket:
    db.session.expire_all()
    return _load_ticket(ticket_id)


# --- composer: replies and internal notes --------------------------------------------------------


def _active_macro(raw) -> object | None:
    if raw in (None, ""):
        return None
    try:
        macro = queries.get_macro(int(raw))
    except (TypeError, ValueError):
        return None
    return macro if macro is not None and macro.active else None


@bp.post("/tickets/<int:ticket_id>/messages")
@role_required("agent")
def post_message(ticket_id: int):
    """Send a public reply or add an internal note; optionally set pending/solved after."""
    ticket = _load_ticket(ticket_id)
    form = request.form
    mode = form.get("mode", "reply")
    body = form.get("body", "")
    then = form.get("then", "")
    composer = {"mode": mode, "body": body, "macro_id": form.get("macro_id", ""), "errors": {}}
    errors = composer["errors"]
    if mode not in COMPOSER_MODES:
        errors["mode"] = "Choose reply or internal note."
    if not body.strip():
        errors["body"] = (
            "Write the note first." if mode == "note" else "Write the reply before sending."
        )
    if then and then not in THEN_STATUSES:
        errors["then"] = "After sending, a ticket can go pending or solved."
    macro = _active_macro(composer["macro_id"])

    message = None
    if not errors:
        me = current_agent()
        try:
            message = services.add_message(
                ticket,
                body,
                author_type="agent",
                agent=me,
                internal=mode == "note",
                macro=macro,
            )
            if then:
                services.set_status(ticket, then, actor=me)
        except TicketError as exc:
            db.session.rollback()
            errors[exc.field if exc.field in ("body", "mode", "then") else "body"] = exc.message
        else:
            db.session.commit()

    if errors:
        ticket = _reload(ticket_id)
        if is_htmx():
            context = _ticket_context(ticket, composer=composer)
            return fragments(
                render_template("tickets/_composer.html", **context),
                status=422,
                headers={"HX-Retarget": "#composer", "HX-Reswap": "outerHTML"},
            )
        context = _full_ticket_context(ticket, composer=composer)
        return render_template("tickets/show.html", **context), 422

    message_id = message.id
    ticket = _reload(ticket_id)
    if not is_htmx():
        flash("Note added." if mode == "note" else "Reply sent.", "success")
        return redirect(url_for("tickets.show", ticket_id=ticket.id, _anchor=f"msg-{message_id}"))
    message = next(m for m in ticket_page.thread_messages(ticket.id) if m.id == message_id)
    context = _ticket_context(ticket, composer={**composer, "body": "", "macro_id": ""})
    context["composer"]["errors"] = {}
    return fragments(
        render_template("tickets/_message.html", m=message, **context),
        render_template("tickets/_composer.html", oob=True, **context),
        *_side_updates(ticket, context),
    )


@bp.route("/tickets/<int:ticket_id>/composer", methods=["GET", "POST"])
@role_required("agent")
def composer(ticket_id: int):
    """The composer with a macro inserted after what was already typed.

    htmx POSTs the draft (a draft can be longer than a URL may be); nothing is stored.
    """
    ticket = _load_ticket(ticket_id)
    values = request.form if request.method == "POST" else request.args
    mode = values.get("mode", "reply")
    mode = mode if mode in COMPOSER_MODES else "reply"
    body = values.get("body", "")
    macro = _active_macro(values.get("macro_id"))
    macro_id = ""
    if macro is not None:
        rendered = _preview(macro, ticket).text
        body = f"{body.rstrip()}\n\n{rendered}" if body.strip() else rendered
        macro_id = macro.id
    context = _ticket_context(
        ticket, composer={"mode": mode, "body": body, "macro_id": macro_id, "errors": {}}
    )
    if not is_htmx():
        return redirect(url_for("tickets.show", ticket_id=ticket.id, macro_id=macro_id, insert=1))
    # The preview has done its job once the text is in the composer: clear it out of band.
    return fragments(
        render_template("tickets/_composer.html", **context),
        render_template("tickets/_macro_preview.html", oob=True, preview=None, ticket=ticket),
    )


def _preview(macro, ticket: Ticket) -> MacroRender:
    return render_macro(macro.body, ticket, current_agent())


@bp.get("/tickets/<int:ticket_id>/macro-preview")
@role_required("agent")
def macro_preview(ticket_id: int):
    """The chosen macro rendered for this ticket's customer, before inserting it."""
    ticket = _load_ticket(ticket_id)
    raw = request.args.get("macro_id", "")
    macro = _active_macro(raw)
    if not is_htmx():
        return redirect(url_for("tickets.show", ticket_id=ticket.id, macro_id=raw))
    if macro is None:
        return render_template(
            "tickets/_macro_preview.html",
            ticket=ticket,
            preview=None,
            macro=None,
            missing=bool(raw),
        )
    return render_template(
        "tickets/_macro_preview.html", ticket=ticket, macro=macro, preview=_preview(macro, ticket)
    )


# --- fields edited in place ----------------------------------------------------------------------


def _apply_field(ticket: Ticket, field: str, value: str, me: Agent) -> None:
    if field == "status":
        services.set_status(ticket, value, actor=me)
    elif field == "priority":
        services.set_priority(ticket, value, actor=me)
    elif field == "category":
        services.set_category(ticket, value, actor=me)
    elif field == "assignee":
        agent = None
        if value == "me":
            agent = me
        elif value:
            agent = db.session.get(Agent, int(value)) if value.isdigit() else None
            if agent is None:
                raise TicketError("Choose an agent from the list.", "assignee")
        services.assign(ticket, assignee=agent, actor=me)
    elif field == "team":
        if value not in TEAMS:
            raise TicketError(f"Must be one of: {', '.join(TEAMS)}.", "team")
        services.assign(ticket, assignee=ticket.assignee, team=value, actor=me)
    elif field == "order":
        order = None
        if value:
            order = ticket_page.customer_order(ticket.customer_id, value)
            if order is None:
                raise TicketError("Choose one of this customer's orders.", "order")
        services.set_related_order(ticket, order, actor=me)
    elif field == "tags":
        tags = [t for t in value.replace(",", " ").split() if t]
        if not tags:
            raise TicketError("Type a tag to add.", "tags")
        services.add_tags(ticket, tags, actor=me)
    elif field == "untag" and not services.remove_tag(ticket, value, actor=me):
        raise TicketError(f"The ticket has no tag {value!r}.", "tags")


@bp.post("/tickets/<int:ticket_id>/fields/<field>")
@role_required("agent")
def update_field(ticket_id: int, field: str):
    """Change one field (status, priority, category, assignee, team, order, tags)."""
    if field not in EDITABLE_FIELDS:
        abort(404)
    ticket = _load_ticket(ticket_id)
    value = (request.form.get("value") or "").strip()
    errors: dict[str, str] = {}
    try:
        _apply_field(ticket, field, value, current_agent())
    except TicketError as exc:
        db.session.rollback()
        errors["tags" if field in ("tags", "untag") else field] = exc.message
    else:
        db.session.commit()
    ticket = _reload(ticket_id)

    if not is_htmx():
        for text in errors.values():
            flash(text, "error")
        return redirect(url_for("tickets.show", ticket_id=ticket.id))
    context = _ticket_context(ticket, errors=errors)
    return fragments(*_side_updates(ticket, context), status=422 if errors else 200)


# --- merge ---------------------------------------------------------------------------------------


@bp.post("/tickets/<int:ticket_id>/merge")
@role_required("agent")
def merge(ticket_id: int):
    """Merge this ticket into another of the customer's: a confirmation step, then the merge."""
    source = _load_ticket(ticket_id)
    if request.form.get("cancel"):
        if not is_htmx():
            return redirect(url_for("tickets.show", ticket_id=source.id))
        return render_template("tickets/_merge.html", **_ticket_context(source))
    raw = (request.form.get("target_id") or "").strip().lstrip("#")
    state = {"target_id": raw, "errors": {}, "target": None}
    errors = state["errors"]
    target = None
    if not raw.isdigit():
        errors["target_id"] = "Enter the number of the ticket to merge into."
    else:
        target = queries.get_ticket(int(raw))
        if target is None:
            errors["target_id"] = f"There is no ticket #{raw}."
        elif target.id == source.id:
            errors["target_id"] = "A ticket cannot be merged into itself."
        elif target.customer_id != source.customer_id:
            errors["target_id"] = "Only tickets of the same customer can be merged."
    state["target"] = target

    confirmed = request.form.get("confirm") == "yes"
    if not errors and confirmed:
        try:
            services.merge(source, target, current_agent())
        except TicketError as exc:
            db.session.rollback()
            errors["target_id"] = exc.message
        else:
            db.session.commit()
            url = url_for("tickets.show", ticket_id=target.id)
            if is_htmx():
                flash(f"Ticket #{source.id} was merged into #{target.id}.", "success")
                location = {"path": url, "target": "#main", "select": "#main", "swap": "outerHTML"}
                return fragments("", headers={"HX-Location": json.dumps(location)})
            flash(f"Ticket #{source.id} was merged into #{target.id}.", "success")
            return redirect(url)

    if not is_htmx():
        if errors:
            flash(errors["target_id"], "error")
            return redirect(url_for("tickets.show", ticket_id=source.id))
        context = _full_ticket_context(source, merge={**state, "confirm": True})
        return render_template("tickets/show.html", **context)
    state["confirm"] = not errors
    context = _ticket_context(source, merge=state)
    return render_template("tickets/_merge.html", **context), 422 if errors else 200


# --- sidebar and presence ------------------------------------------------------------------------


@bp.get("/tickets/<int:ticket_id>/sidebar")
@role_required("agent")
def sidebar(ticket_id: int):
    """The customer sidebar: summary, previous tickets and contributed panels."""
    from helpdesk.tickets.sidebar import compose_sidebar

    found = ticket_page.ticket_for_sidebar(ticket_id)
    if found is None:
        abort(404)
    ticket = found.ticket
    composed = compose_sidebar(ticket, found.summary, found.has_other_tickets)
    context = {
        "ticket": ticket,
        "sidebar": composed,
        "summary_html": Markup(  # noqa: S704 - a rendered (autoescaped) template
            render_template("customer_context/_summary.html", summary=composed.summary)
        ),
        "panels_html": [
            Markup(  # noqa: S704 - a rendered (autoescaped) template
                render_template(
                    item.panel.template,
                    ticket=ticket,
                    customer_id=ticket.customer_id,
                    **item.context,
                )
            )
            for item in composed.panels
        ],
    }
    if is_htmx():
        return render_template("tickets/_sidebar.html", **context)
    return render_template("tickets/sidebar_page.html", **context)


@bp.route("/tickets/<int:ticket_id>/presence", methods=["GET", "POST"])
@role_required("agent")
def presence(ticket_id: int):
    """Who else is on the ticket. POST also records this agent (viewing or replying)."""
    ticket = _load_ticket(ticket_id)
    me = current_agent()
    if request.method == "POST":
        if request.form.get("leaving"):
            services.clear_presence(ticket, me)
            db.session.commit()
            return "", 204
        replying = request.form.get("replying", "") in ("1", "true", "on")
        services.touch_presence(ticket, me, replying=replying)
        db.session.commit()
    present = ticket_page.others_present(ticket.id, me.id)
    return render_template("tickets/_presence_list.html", present=present, ticket=ticket)
