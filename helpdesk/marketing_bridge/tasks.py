"""The marketing bridge's scheduled jobs (all idempotent; safe to run twice)."""

from __future__ import annotations

from flask import Flask

from helpdesk.scheduling import Job, register_job


def dispatch() -> str:
    """Send due outbox messages through the ESP backend (gates re-checked at send time)."""
    from helpdesk.marketing_bridge.dispatcher import dispatch_due

    return str(dispatch_due())


def cart_recovery() -> dict:
    """Mark stale checkouts abandoned, enrol them by branch, open VIP follow-up tasks."""
    from helpdesk.marketing_bridge.flows import cart_recovery as recovery

    counts = recovery.detect_abandoned()
    counts["vip_tasks"] = recovery.open_vip_tasks()
    return counts


def flows() -> dict:
    """Flow upkeep: enrol At risk / Lapsed / Lost customers, advance or complete enrolments."""
    from helpdesk.marketing_bridge.flows import engine, winback
    from helpdesk.marketing_bridge.templates_store import ensure_default_templates

    engine.ensure_default_flows()
    ensure_default_templates()
    counts = winback.enroll_segment_flows()
    counts.update(engine.advance_enrollments())
    return counts


def segments_refresh() -> dict:
    """Recompute every segment's membership (set-based), adding new category segments."""
    from helpdesk.marketing_bridge.segments import ensure_default_segments, refresh_all

    added = ensure_default_segments()
    result = refresh_all()
    result["added"] = added
    return result


JOBS = [
    # Not a singleton: several dispatchers share the queue through SKIP LOCKED and leases.
    Job(
        "marketing.dispatch",
        dispatch,
        "Send due outbox messages",
        ("interval", {"seconds": 15}),
        singleton=False,
    ),
    Job(
        "marketing.cart_recovery",
        cart_recovery,
        "Detect abandoned carts and start their recovery",
        ("interval", {"minutes": 5}),
    ),
    Job(
        "marketing.flows",
        flows,
        "Enrol winback/reactivation, advance flow enrolments",
        ("interval", {"minutes": 5}),
    ),
    Job(
        "marketing.segments_refresh",
        segments_refresh,
        "Refresh dynamic segment membership",
        ("interval", {"minutes": 15}),
    ),
]


def init_app(app: Flask) -> None:
    """Register the marketing jobs with the scheduler."""
    for job in JOBS:
        register_job(app, job)
