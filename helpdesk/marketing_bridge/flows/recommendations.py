"""Product picks for flow messages: co-purchases, new arrivals, replenishment.

Every pick is in stock (inventory above zero, or not tracked) and is never something the
customer already bought.
"""

from __future__ import annotations

from sqlalchemy import and_, desc, func, select
from sqlalchemy.orm import aliased

from helpdesk.customer_context.models import Order, OrderLine, Product
from helpdesk.extensions import db
from helpdesk.marketing_bridge.flows.context import in_stock


def owned_product_ids(customer_id: int):
    """SQL: the ids of every product the customer has ordered (cancelled orders included)."""
    return (
        select(OrderLine.product_id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.customer_id == customer_id, OrderLine.product_id.is_not(None))
    )


def _load(ids: list[int]) -> list[Product]:
    if not ids:
        return []
    by_id = {p.id: p for p in db.session.scalars(select(Product).where(Product.id.in_(ids)))}
    return [by_id[i] for i in ids if i in by_id]


def co_purchased(customer_id: int, product_ids, limit: int = 3) -> list[Product]:
    """Products other customers bought in the same orders as `product_ids`, most often first."""
    product_ids = [int(p) for p in product_ids if p is not None]
    if not product_ids or limit <= 0:
        return []
    seed = aliased(OrderLine)
    other = aliased(OrderLine)
    together = func.count(func.distinct(other.order_id)).label("together")
    rows = db.session.execute(
        select(other.product_id, together)
        .join(seed, and_(seed.order_id == other.order_id, seed.product_id.in_(product_ids)))
        .join(Order, Order.id == other.order_id)
        .join(Product, Product.id == other.product_id)
        .where(
            Order.customer_id != customer_id,
            Order.cancelled_at.is_(None),
            other.product_id.not_in(product_ids),
            other.product_id.not_in(owned_product_ids(customer_id)),
            in_stock(),
        )
        .group_by(other.product_id)
        .order_by(desc(together), other.product_id)
        .limit(limit)
    ).all()
    return _load([r[0] for r in rows])


def best_sellers(customer_id: int, limit: int, categories=None, exclude=()) -> list[Product]:
    """In-stock products the customer does not own, by units sold (optionally by category)."""
    if limit <= 0:
        return []
    sold = func.coalesce(func.sum(OrderLine.quantity), 0).label("sold")
    query = (
        select(Product.id, sold)
        .outerjoin(OrderLine, OrderLine.product_id == Product.id)
        .where(in_stock(), Product.id.not_in(owned_product_ids(customer_id)))
        .group_by(Product.id)
        .order_by(desc(sold), Product.id)
        .limit(limit)
    )
    if categories:
        query = query.where(Product.category.in_(list(categories)))
    if exclude:
        query = query.where(Product.id.not_in(list(exclude)))
    return _load([r[0] for r in db.session.execute(query).all()])


def related_products(customer_id: int, products, limit: int = 3) -> list[Product]:
    """Second-purchase picks: co-purchases first, then best sellers of the same categories."""
    ids = [p.id for p in products]
    picks = co_purchased(customer_id, ids, limit)
    if len(picks) < limit:
        categories = {p.category for p in products if p.category}
        if categories:
            picks += best_sellers(
                customer_id, limit - len(picks), categories, exclude=ids + [p.id for p in picks]
            )
    return picks


def new_arrivals(customer_id: int, categories=None, limit: int = 3) -> list[Product]:
    """The newest in-stock products the customer does not own (their categories first)."""
    query = (
        select(Product)
        .where(in_stock(), Product.id.not_in(owned_product_ids(customer_id)))
        .order_by(Product.created_at.desc(), Product.id.desc())
    )
    picks: list[Product] = []
    if categories:
        picks = list(
            db.session.scalars(query.where(Product.category.in_(list(categories))).limit(limit))
        )
    if len(picks) < limit:
        more = query.limit(limit - len(picks))
        if picks:
            more = more.where(Product.id.not_in([p.id for p in picks]))
        picks += list(db.session.scalars(more))
    return picks


def customer_categories(customer_id: int, limit: int = 3) -> list[str]:
    """The categories the customer buys most."""
    count = func.count(OrderLine.id).label("n")
    rows = db.session.execute(
        select(OrderLine.category, count)
        .join(Order, Order.id == OrderLine.order_id)
        .where(Order.customer_id == customer_id, OrderLine.category.is_not(None))
        .group_by(OrderLine.category)
        .order_by(desc(count), OrderLine.category)
        .limit(limit)
    ).all()
    return [r[0] for r in rows]
