"""JSON API: `GET /api/v1/customers/<id>/context` (scope customers:read)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from helpdesk.auth.access import api_key_required
from helpdesk.customer_context import queries

bp = Blueprint("customers_api", __name__, url_prefix="/api/v1/customers")


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


def _money(value) -> str:
    return f"{value:.2f}"


def suppression_state(customer_id: int) -> dict:
    """Active suppression reasons from the marketing bridge."""
    try:
        from helpdesk.marketing_bridge.suppression import active_reasons
    except ImportError:  # the suppression feature is not installed in this build
        return {"suppressed": False, "reasons": []}
    reasons = sorted(active_reasons(customer_id))
    return {"suppressed": bool(reasons), "reasons": reasons}


@bp.get("/<int:customer_id>/context")
@api_key_required("customers:read")
def context(customer_id: int):
    """Metrics, segment, tier, loyalty and suppression state of one customer."""
    summary = queries.customer_summary(customer_id)
    if summary is None:
        return jsonify({"error": f"No customer with id {customer_id}."}), 404
    customer, m = summary.customer, summary.metrics
    segment = summary.segment
    return jsonify(
        {
            "id": customer.id,
            "external_id": customer.external_id,
            "email": customer.email,
            "name": customer.name,
            "metrics": {
                "orders_count": summary.orders_count,
                "total_spent": _money(summary.total_spent),
                "aov": _money(summary.aov),
                "clv": _money(summary.clv),
                "clv_percentile": summary.clv_percentile,
                "recency_days": m.recency_days if m else None,
                "frequency": summary.orders_count,
                "monetary": _money(summary.total_spent),
                "r": m.r_score if m else None,
                "f": m.f_score if m else None,
                "m": m.m_score if m else None,
                "first_order_at": _iso(m.first_order_at) if m else None,
                "last_order_at": _iso(m.last_order_at) if m else None,
                "as_of": _iso(m.as_of) if m else None,
            },
            "segment": (
                {"key": segment.key, "label": segment.label, "meaning": segment.meaning}
                if segment
                else None
            ),
            "tier": {"name": summary.tier, "since": _iso(summary.tier_since)},
            "loyalty": {"points": summary.points},
            "suppression": suppression_state(customer_id),
        }
    )
