"""Compile a validated segment definition to ONE SQL select of customer ids (SQLAlchemy Core).

Portable across SQLite and PostgreSQL: day windows become timestamp comparisons computed in
Python (`now - N days`), set conditions become `IN (subquery)`, and no dialect functions are
used. Customers without a metrics row count as 0 orders, 0 spent, tier new.
"""

from __future__ import annotations

import datetime as dt
import json
import operator

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Select,
    and_,
    bindparam,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)

from helpdesk.customer_context.models import (
    Customer,
    CustomerMetrics,
    Order,
    OrderLine,
    Product,
    RfmBoundaries,
)
from helpdesk.database import utcnow
from helpdesk.marketing_bridge.models import EmailEvent
from helpdesk.marketing_bridge.segments.schema import DefinitionError, validate_definition
from helpdesk.tickets.models import OPEN_STATUSES, Ticket

COMPARE = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
# days_since_last_order compares with the last order's timestamp, so the direction flips.
FLIPPED = {"=": "=", "!=": "!=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}
ENGAGEMENT_TYPES = ("open", "click")


class ParamClock:
    """A `now` whose moments are bind parameters: `now - N days` compiles to `:ago_<i>`, so a
    statement built once can run at any later time with `params(now)` (segments for one
    customer run on every order; building their SQL each time cost more than running it)."""

    def __init__(self) -> None:
        self._binds: dict[float, BindParameter] = {}

    def ago(self, days: float) -> BindParameter:
        bind = self._binds.get(days)
        if bind is None:
            bind = bindparam(f"ago_{len(self._binds)}", type_=DateTime())
            self._binds[days] = bind
        return bind

    def params(self, now: dt.datetime) -> dict[str, dt.datetime]:
        return {b.key: now - dt.timedelta(days=days) for days, b in self._binds.items()}


def _ago(now, days):
    """`now - days` as a value, or as a parameter of a ParamClock."""
    if isinstance(now, ParamClock):
        return now.ago(float(days))
    return now - dt.timedelta(days=float(days))


def _counted(order=Order):
    return and_(order.cancelled_at.is_(None), order.test.is_(False))


def _numeric(expression, op: str, value):
    if op == "between":
        return expression.between(value[0], value[1])
    return COMPARE[op](expression, value)


def _site_mean_aov():
    """The order-weighted site AOV (all customers' net spend over all their orders) as stored
    by the last full metrics recompute, with the RFM cut points; before any recompute has
    stored one, computed live over every metrics row (the stored value saves that scan on
    every order). COALESCE evaluates the live average only when it is needed."""
    stored = (
        select(RfmBoundaries.site_aov).order_by(RfmBoundaries.id.desc()).limit(1).scalar_subquery()
    )
    live = (
        select(
            func.sum(CustomerMetrics.total_spent)
            / func.nullif(func.sum(CustomerMetrics.orders_count), 0)
        )
        .where(CustomerMetrics.orders_count > 0)
        .scalar_subquery()
    )
    return func.coalesce(stored, live)


def _days_since(op: str, value, now: dt.datetime):
    last = CustomerMetrics.last_order_at

    def at(days):
        return _ago(now, days)

    if op == "between":
        return and_(last <= at(value[0]), last >= at(value[1]))
    if op == "=":
        # Whole days: the last order fell within that day's 24 hours.
        return and_(last <= at(value), last > at(value + 1))
    if op == "!=":
        return or_(last > at(value), last <= at(value + 1))
    return COMPARE[FLIPPED[op]](last, at(value))


def _owned_by(column, customer):
    """The subquery's rows of `customer` only (one-customer form, see `matches`), else every
    row with an owner. The outer query asks about that customer alone either way; PostgreSQL
    pushes its `customer.id = :id` into an IN subquery by itself, SQLite does not and built the
    whole list first (every customer's orders of the period grouped: ~200 ms per order placed
    at 1M orders)."""
    return column.is_not(None) if customer is None else column == customer


def _orders_within(op: str, value, days, now: dt.datetime, customer=None):
    since = _ago(now, days)

    def having(condition):
        return (
            select(Order.customer_id)
            .where(_owned_by(Order.customer_id, customer), Order.placed_at >= since, _counted())
            .group_by(Order.customer_id)
            .having(condition)
        )

    n = func.count(Order.id)
    # Conditions true for a count of 0 must include customers with no orders at all, so they
    # are written as the complement of a HAVING that only ever sees customers with orders.
    if op == "between":
        low, high = value
        inside = Customer.id.in_(having(n.between(low, high)))
        return or_(inside, not_(Customer.id.in_(having(n >= 1)))) if low <= 0 <= high else inside
    comparison = COMPARE[op]
    if comparison(0, value):
        negated = {"=": "!=", "!=": "=", ">": "<=", ">=": "<", "<": ">=", "<=": ">"}[op]
        return not_(Customer.id.in_(having(COMPARE[negated](n, value))))
    return Customer.id.in_(having(comparison(n, value)))


def _category_within(category: str, days: int, now: dt.datetime, customer=None):
    since = _ago(now, days)
    category = category.strip().lower()
    in_category = or_(
        func.lower(OrderLine.category) == category,
        OrderLine.product_id.in_(
            select(Product.id).where(func.lower(Product.category) == category)
        ),
    )
    return Customer.id.in_(
        select(Order.customer_id)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(
            _owned_by(Order.customer_id, customer),
            Order.placed_at >= since,
            _counted(),
            in_category,
        )
    )


def _engaged_within(days: int, now: dt.datetime, customer=None):
    since = _ago(now, days)
    return Customer.id.in_(
        select(EmailEvent.customer_id).where(
            _owned_by(EmailEvent.customer_id, customer),
            EmailEvent.type.in_(ENGAGEMENT_TYPES),
            EmailEvent.at >= since,
        )
    )


def _choice(expression, op: str, value):
    if op == "in":
        return expression.in_(value)
    if op == "not_in":
        return or_(expression.not_in(value), expression.is_(None))
    if op == "=":
        return expression == value
    return or_(expression != value, expression.is_(None))


def compile_condition(condition: dict, now: dt.datetime, customer=None):
    """One condition as a SQL boolean over Customer and CustomerMetrics; with `customer` (a
    value or bind parameter) its subqueries read that customer's rows only."""
    field, op, value = condition["field"], condition["op"], condition.get("value")
    if field == "orders_count":
        return _numeric(func.coalesce(CustomerMetrics.orders_count, 0), op, value)
    if field == "orders_within_days":
        return _orders_within(op, value, condition["days"], now, customer)
    if field == "days_since_last_order":
        return _days_since(op, value, now)
    if field == "total_spent":
        return _numeric(func.coalesce(CustomerMetrics.total_spent, 0), op, value)
    if field == "aov_vs_site_mean":
        mean = _site_mean_aov()
        if op == "between":
            return and_(
                CustomerMetrics.aov >= mean * value[0], CustomerMetrics.aov <= mean * value[1]
            )
        return and_(
            CustomerMetrics.orders_count > 0, COMPARE[op](CustomerMetrics.aov, mean * value)
        )
    if field == "clv_percentile":
        return _numeric(CustomerMetrics.clv_percentile, op, value)
    if field == "tier":
        return _choice(func.coalesce(CustomerMetrics.tier, "new"), op, value)
    if field == "rfm_segment":
        return _choice(CustomerMetrics.rfm_segment, op, value)
    if field == "first_touch_source":
        lowered = [v.strip().lower() for v in value] if isinstance(value, list) else value.lower()
        return _choice(func.lower(Customer.first_touch_source), op, lowered)
    if field == "accepts_marketing":
        return Customer.accepts_marketing.is_(bool(value))
    if field == "has_open_ticket":
        open_ticket = Customer.id.in_(
            select(Ticket.customer_id).where(
                Ticket.status.in_(OPEN_STATUSES), _owned_by(Ticket.customer_id, customer)
            )
        )
        return open_ticket if value else not_(open_ticket)
    if field == "purchased_category_within_days":
        clause = _category_within(value["category"], value["days"], now, customer)
        return clause if op == "is" else not_(clause)
    if field == "engaged_within_days":
        clause = _engaged_within(value, now, customer)
        return clause if op == "is" else not_(clause)
    raise ValueError(f"unknown segment field {field!r}")  # validation makes this unreachable


def compile_node(node: dict, now: dt.datetime, customer=None):
    """A group or condition as a SQL boolean."""
    if "all" in node:
        parts = [compile_node(child, now, customer) for child in node["all"]]
        return and_(true(), *parts)
    if "any" in node:
        parts = [compile_node(child, now, customer) for child in node["any"]]
        return or_(false(), *parts)
    return compile_condition(node, now, customer)


# Validated definitions by their JSON text: validation (marshmallow, per condition) would
# otherwise run for every segment on every order. Bounded; a stored definition is immutable
# text, so an entry is never stale.
_validated: dict[str, dict | DefinitionError] = {}
VALIDATED_MAX = 512


def validated(definition) -> dict:
    """`validate_definition(definition)`, remembered for definitions seen before (the tree
    returned is shared: read it, never change it)."""
    try:
        key = json.dumps(definition, sort_keys=True)
    except (TypeError, ValueError):
        return validate_definition(definition)
    found = _validated.get(key)
    if found is None:
        try:
            found = validate_definition(definition)
        except DefinitionError as exc:
            found = exc
        if len(_validated) >= VALIDATED_MAX:
            _validated.clear()
        _validated[key] = found
    if isinstance(found, DefinitionError):
        raise DefinitionError(found.errors)
    return found


def compile_definition(
    definition: dict, now: dt.datetime | ParamClock | None = None, customer=None
) -> Select:
    """`SELECT customer.id` of the customers the definition matches at `now` (validated);
    of `customer` alone when given (a value or bind parameter)."""
    now = now or utcnow()
    tree = validated(definition)
    stmt = (
        select(Customer.id.label("customer_id"))
        .select_from(Customer)
        .outerjoin(CustomerMetrics, CustomerMetrics.customer_id == Customer.id)
        .where(compile_node(tree, now, customer))
    )
    return stmt if customer is None else stmt.where(Customer.id == customer)


def matches(definition: dict, customer_id, now: dt.datetime | ParamClock | None = None):
    """The same select narrowed to one customer (for incremental updates); `customer_id`
    may be a bind parameter, `now` a ParamClock."""
    if not isinstance(customer_id, ColumnElement):
        customer_id = literal(customer_id)
    return compile_definition(definition, now, customer_id)
