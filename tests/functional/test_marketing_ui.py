"""The /marketing pages as agents and leads use them (real requests, CSRF, htmx)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from sqlalchemy import func, select

from helpdesk.database import utcnow
from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows import ensure_default_flows, post_purchase
from helpdesk.marketing_bridge.models import (
    Campaign,
    Flow,
    MessageTemplate,
    OutboundMessage,
    Segment,
)
from helpdesk.marketing_bridge.segments import refresh_segment
from helpdesk.marketing_bridge.templates_store import ensure_default_templates
from tests.factories.customer_context import (
    CustomerFactory,
    CustomerMetricsFactory,
    ProductFactory,
)
from tests.factories.marketing_bridge import (
    OutboundMessageFactory,
    SegmentFactory,
    SuppressionFactory,
    order_with,
)


@pytest.fixture
def shop(app):
    ensure_default_flows()
    ensure_default_templates()
    customer = CustomerFactory(first_name="Ada", last_name="Byron", email="ada@shop.test")
    order = order_with(customer, ProductFactory(title="Pour-over kettle"))
    post_purchase.on_order_placed("test", order=order, customer=customer)
    db.session.commit()
    return customer


def text(response) -> str:
    return response.get_data(as_text=True)


def test_agent_reads_every_page(agent_client, shop):
    for url in (
        "/marketing/",
        "/marketing/segments",
        "/marketing/flows",
        "/marketing/campaigns",
        "/marketing/outbox",
        "/marketing/templates",
        "/marketing/templates/order_confirmation",
    ):
        response = agent_client.get(url)
        assert response.status_code == 200, url
    flow = db.session.scalar(select(Flow).where(Flow.key == "post_purchase"))
    page = text(agent_client.get(f"/marketing/flows/{flow.id}"))
    assert "order_confirmation" in page and "review_request" in page
    assert "Save settings" not in page  # agents read, leads edit
    message = db.session.scalar(
        select(OutboundMessage).where(OutboundMessage.template == "order_confirmation")
    )
    page = text(agent_client.get(f"/marketing/outbox/{message.id}"))
    assert "Pour-over kettle" in page and "Cancel" not in page


def test_agent_cannot_edit(agent_client, shop):
    flow = db.session.scalar(select(Flow).where(Flow.key == "post_purchase"))
    assert (
        agent_client.form(f"/marketing/flows/{flow.id}", {"holdout_percent": "5"}).status_code
        == 403
    )
    assert agent_client.form("/marketing/segments/new", {"name": "x"}).status_code == 403
    assert agent_client.form("/marketing/templates/winback", {"subject": "x"}).status_code == 403


def test_outbox_filters_and_htmx_partial(agent_client, shop):
    OutboundMessageFactory(kind="promotional", status="failed", reason="ESP answered 503")
    page = text(agent_client.get("/marketing/outbox?status=failed"))
    assert "ESP answered 503" in page and "Pour-over" not in page
    partial = agent_client.hx("get", "/marketing/outbox?kind=transactional")
    body = text(partial)
    assert "<html" not in body and "order_confirmation" in body
    assert agent_client.get("/marketing/outbox?status=bogus").status_code == 400


def test_segment_export_is_streamed_and_formula_safe(agent_client):
    evil = CustomerFactory(
        first_name='=HYPERLINK("http://x")', last_name="+1", email="evil@shop.test"
    )
    CustomerMetricsFactory(customer=evil, orders_count=3)
    segment = SegmentFactory(
        name="Repeat", definition={"all": [{"field": "orders_count", "op": ">=", "value": 2}]}
    )
    refresh_segment(segment)
    db.session.commit()
    response = agent_client.get(f"/marketing/segments/{segment.id}/members.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(text(response))))
    assert rows[0][:3] == ["customer_id", "external_id", "email"]
    assert rows[1][3] == '\'=HYPERLINK("http://x")'
    assert rows[1][4] == "'+1"
    page = text(agent_client.get(f"/marketing/segments/{segment.id}"))
    assert "evil@shop.test" in page and "1 member" in page


def test_lead_builds_a_segment_with_the_row_builder(lead_client):
    CustomerMetricsFactory(orders_count=4, tier="regular")
    CustomerMetricsFactory(orders_count=1, tier="regular")
    db.session.commit()
    base = {
        "name": "Regulars with 2+ orders",
        "description": "",
        "frequency_cap": "",
        "mode": "builder",
        "match": "all",
        "rows": "2",
        "cond-0-field": "orders_count",
        "cond-0-op": ">=",
        "cond-0-value": "two",
        "cond-1-field": "tier",
        "cond-1-op": "in",
        "cond-1-value": "regular, gold",
    }
    response = lead_client.form("/marketing/segments/new", {**base, "action": "save"})
    assert response.status_code == 422
    page = text(response)
    assert "Must be a number." in page and "gold" in page
    added = lead_client.form("/marketing/segments/new", {**base, "action": "add"})
    assert text(added).count("data-cond-field") == 3
    fixed = {**base, "cond-0-value": "2", "cond-1-value": "regular"}
    preview = lead_client.form("/marketing/segments/new", {**fixed, "action": "preview"})
    assert "1 customer match now" in text(preview)
    saved = lead_client.form("/marketing/segments/new", {**fixed, "action": "save"})
    assert saved.status_code == 302
    segment = db.session.scalar(select(Segment).where(Segment.name == "Regulars with 2+ orders"))
    assert segment.member_count == 1
    assert (
        segment.definition
        == {
            "all": [
                {"field": "orders_count", "op": ">=", "value": 2, "days": None},
                {"field": "tier", "op": "in", "value": ["regular"], "days": None},
            ]
        }
        or segment.definition["all"][0]["value"] == 2
    )


def test_lead_saves_nested_json_and_sees_path_errors(lead_client):
    form = {"name": "Nested", "mode": "json", "action": "save", "frequency_cap": "6"}
    bad = lead_client.form(
        "/marketing/segments/new",
        {
            **form,
            "definition": '{"all": [{"any": [{"field": "tier", "op": "=", "value": "gold"}]}]}',
        },
    )
    assert bad.status_code == 422
    assert "all[0].any[0].value" in text(bad)
    broken = lead_client.form("/marketing/segments/new", {**form, "definition": "{nope"})
    assert broken.status_code == 422 and "Not valid JSON" in text(broken)
    good = lead_client.form(
        "/marketing/segments/new",
        {
            **form,
            "definition": json.dumps(
                {
                    "all": [
                        {
                            "any": [
                                {"field": "tier", "op": "=", "value": "vip"},
                                {"field": "engaged_within_days", "op": "is", "value": 30},
                            ]
                        }
                    ]
                }
            ),
        },
    )
    assert good.status_code == 302
    segment = db.session.scalar(select(Segment).where(Segment.name == "Nested"))
    assert segment.frequency_cap == 6


def test_lead_edits_and_previews_a_template(lead_client, shop):
    url = "/marketing/templates/review_request"
    bad = lead_client.form(url, {"subject": "Hi {{customer.shoe_size}}", "body": "x"})
    assert bad.status_code == 422 and "customer.shoe_size" in text(bad)
    live = lead_client.hx(
        "post",
        url + "/preview",
        {
            "subject": "Hello {{customer.first_name}}",
            "body": "Order {{order.name}}",
            "customer": "ada@shop.test",
        },
    )
    body = text(live)
    assert "<html" not in body and "Hello Ada" in body and "Order #" in body
    saved = lead_client.form(
        url,
        {
            "subject": "How was {{order.name}}, {{customer.first_name|friend}}?",
            "body": "Rate it 1-5.",
        },
    )
    assert saved.status_code == 302
    stored = db.session.scalar(
        select(MessageTemplate).where(MessageTemplate.key == "review_request")
    )
    assert stored.subject.startswith("How was")
    page = text(lead_client.get(url + "?customer=ada@shop.test"))
    assert "How was #" in page and "Ada?" in page
    assert lead_client.form(url + "/reset").status_code == 302
    assert "How did we do" in db.session.scalar(
        select(MessageTemplate.subject).where(MessageTemplate.key == "review_request")
    )


def test_lead_composes_previews_and_sends_a_campaign(lead_client, shop):
    segment = SegmentFactory(
        name="Buyers", definition={"all": [{"field": "orders_count", "op": ">=", "value": 1}]}
    )
    plain = CustomerMetricsFactory(orders_count=2).customer
    vip = CustomerMetricsFactory(high_value=True).customer
    quiet = CustomerMetricsFactory(
        orders_count=1, customer=CustomerFactory(accepts_marketing=False)
    ).customer
    troubled = CustomerMetricsFactory(orders_count=3).customer
    SuppressionFactory(
        customer=troubled, customer_id=troubled.id, email=troubled.email, reason="open_ticket"
    )
    busy = CustomerMetricsFactory(orders_count=5).customer
    for days in (1, 2, 3, 4):
        OutboundMessageFactory(customer=busy, sent=True, sent_at=utcnow() - dt.timedelta(days=days))
    refresh_segment(segment)
    db.session.commit()
    missing = lead_client.form("/marketing/campaigns/new", {"name": "", "subject": "", "body": ""})
    assert missing.status_code == 422
    created = lead_client.form(
        "/marketing/campaigns/new",
        {
            "name": "Spring",
            "segment_id": str(segment.id),
            "template_key": "campaign",
            "subject": "{{customer.first_name|Hi}}, spring is here",
            "body": "20% off everything.",
            "exclude_vip": "on",
        },
    )
    assert created.status_code == 302
    campaign = db.session.scalar(select(Campaign).where(Campaign.name == "Spring"))
    page = text(lead_client.get(f"/marketing/campaigns/{campaign.id}"))
    assert "20% off everything." in page
    from helpdesk.marketing_bridge.campaigns import audience_counts

    counts = audience_counts(campaign)
    assert counts["members"] == 5
    assert counts["vip_excluded"] == 1 and counts["no_consent"] == 1
    assert counts["suppressed"] == 1 and counts["capped"] == 1 and counts["will_send"] == 1
    sent = lead_client.form(f"/marketing/campaigns/{campaign.id}/send")
    assert sent.status_code == 302
    keys = set(
        db.session.scalars(
            select(OutboundMessage.idempotency_key).where(
                OutboundMessage.campaign_id == campaign.id
            )
        )
    )
    assert keys == {f"campaign:{campaign.id}:{c.id}" for c in (plain, quiet, troubled, busy)}
    again = lead_client.form(f"/marketing/campaigns/{campaign.id}/send", follow_redirects=True)
    assert "already sent" in text(again)
    count = db.session.scalar(
        select(func.count())
        .select_from(OutboundMessage)
        .where(OutboundMessage.campaign_id == campaign.id)
    )
    assert count == 4
    assert vip.id not in {int(k.rsplit(":", 1)[1]) for k in keys}


def test_lead_tunes_a_flow_within_the_playbook(lead_client, shop):
    flow = db.session.scalar(select(Flow).where(Flow.key == "post_purchase"))
    form = {
        "active": "on",
        "holdout_percent": "10",
        "shipping_day": "2",
        "review_day": "12",
        "second_purchase_day": "18",
        "late_day": "50",
        "max_order_age_days": "3",
        "recommendations": "3",
        "repeat_discount_text": "10% off with AGAIN10",
    }
    bad = lead_client.form(f"/marketing/flows/{flow.id}", form)
    assert bad.status_code == 422 and "Between 7 and 10." in text(bad)
    good = lead_client.form(f"/marketing/flows/{flow.id}", {**form, "review_day": "9"})
    assert good.status_code == 302
    db.session.refresh(flow)
    assert flow.holdout_percent == 10 and flow.settings["review_day"] == 9
    assert flow.settings["repeat_discount_text"] == "10% off with AGAIN10"
    cart = db.session.scalar(select(Flow).where(Flow.key == "cart_recovery"))
    bad_hours = lead_client.form(
        f"/marketing/flows/{cart.id}",
        {
            "active": "on",
            "holdout_percent": "0",
            "first_time_hours": "1, 24",
            "existing_hours": "1",
            "vip_hours": "1",
            "max_cart_age_days": "7",
        },
    )
    assert bad_hours.status_code == 422 and "exactly 3" in text(bad_hours)


def test_lead_retries_a_failed_and_cancels_a_scheduled_message(lead_client):
    failed = OutboundMessageFactory(status="failed", attempts=6, reason="gave up")
    scheduled = OutboundMessageFactory(send_after=utcnow() + dt.timedelta(days=1))
    db.session.commit()
    assert lead_client.form(f"/marketing/outbox/{failed.id}/retry").status_code == 302
    assert lead_client.form(f"/marketing/outbox/{scheduled.id}/cancel").status_code == 302
    db.session.refresh(failed)
    db.session.refresh(scheduled)
    assert failed.status == "scheduled" and failed.attempts == 0
    assert scheduled.status == "skipped"
    again = lead_client.form(f"/marketing/outbox/{scheduled.id}/retry", follow_redirects=True)
    assert "Only failed messages" in text(again)


def test_customer_messages_for_the_customer_page(shop):
    from helpdesk.marketing_bridge.queries import customer_messages

    messages = customer_messages(shop.id, limit=2)
    assert len(messages) == 2
    assert all(m.customer_id == shop.id for m in messages)
    assert messages[0].send_after >= messages[1].send_after


def test_absurd_parameters_are_refused_not_500(agent_client, lead_client):
    huge = "9" * 30
    for url in (
        f"/marketing/outbox?before={huge}",
        f"/marketing/outbox?campaign={huge}",
        f"/marketing/segments/1?page={huge}",
        f"/marketing/templates/winback?customer={huge}",
        f"/marketing/flows/1?before={huge}",
    ):
        assert agent_client.get(url).status_code in (200, 400, 404), url
    assert lead_client.get(f"/marketing/campaigns/new?segment_id={huge}").status_code == 200
    response = lead_client.form(
        "/marketing/segments/new",
        {
            "name": "Huge",
            "mode": "json",
            "action": "save",
            "definition": json.dumps(
                {"all": [{"field": "orders_count", "op": ">", "value": 10**40}]}
            ),
        },
    )
    assert response.status_code == 422 and "at most" in text(response)
