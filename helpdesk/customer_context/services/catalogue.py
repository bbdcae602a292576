"""The catalogue: products with kinds and variants, and matching order lines to them."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import or_, select, update

from helpdesk.customer_context.models import OrderLine, Product, ProductVariant
from helpdesk.customer_context.schemas import LineData, ProductData
from helpdesk.customer_context.services.common import Outcome, assign, is_stale
from helpdesk.database import money, utcnow
from helpdesk.extensions import db


class ProductMatcher:
    """Finds the catalogue product of an order line (variant id, product id, then sku).

    Caches look-ups, so one matcher serves a whole import; create one per request otherwise.
    """

    def __init__(self):
        self._cache: dict[tuple[str, str], tuple[int, str | None, Decimal] | None] = {}
        self._complete = False

    def preload(self) -> ProductMatcher:
        """Load the whole catalogue's ids and skus in two queries (bulk imports); afterwards
        a miss means "no such product" without asking the database."""
        self._cache.clear()
        for product_id, category, price, external_id, sku in db.session.execute(
            select(Product.id, Product.category, Product.price, Product.external_id, Product.sku)
        ):
            found = (product_id, category, money(price))
            if external_id:
                self._cache[("product", external_id)] = found
            if sku:
                self._cache.setdefault(("sku", sku), found)
        for product_id, category, price, external_id, sku in db.session.execute(
            select(
                Product.id,
                Product.category,
                Product.price,
                ProductVariant.external_id,
                ProductVariant.sku,
            ).join(ProductVariant, ProductVariant.product_id == Product.id)
        ):
            found = (product_id, category, money(price))
            self._cache[("variant", external_id)] = found
            if sku:
                self._cache.setdefault(("sku", sku), found)
        self._complete = True
        return self

    def _lookup(self, kind: str, key: str):
        if (kind, key) in self._cache or self._complete:
            return self._cache.get((kind, key))
        if kind == "variant":
            stmt = (
                select(Product.id, Product.category, Product.price)
                .join(ProductVariant, ProductVariant.product_id == Product.id)
                .where(ProductVariant.external_id == key)
            )
        elif kind == "product":
            stmt = select(Product.id, Product.category, Product.price).where(
                Product.external_id == key
            )
        else:
            stmt = (
                select(Product.id, Product.category, Product.price)
                .outerjoin(ProductVariant, ProductVariant.product_id == Product.id)
                .where(or_(Product.sku == key, ProductVariant.sku == key))
                .order_by(Product.id)
                .limit(1)
            )
        row = db.session.execute(stmt).first()
        found = (row[0], row[1], money(row[2])) if row else None
        self._cache[(kind, key)] = found
        return found

    def match(self, line: LineData) -> tuple[int, str | None, Decimal] | None:
        """(product id, category, price) of the line's product, or None."""
        for kind, key in (
            ("variant", line.variant_external_id),
            ("product", line.product_external_id),
            ("sku", line.sku),
        ):
            if key and (found := self._lookup(kind, key)):
                return found
        return None


def upsert_product(data: ProductData) -> Outcome[Product]:
    """Create or update a product with its variants; links earlier order lines to it."""
    product = db.session.scalar(select(Product).where(Product.external_id == data.external_id))
    if product is not None and is_stale(data.updated_at, product.source_updated_at):
        return Outcome(product, "stale")
    values = dict(
        title=data.title[:255],
        category=data.category,
        vendor=data.vendor,
        price=money(data.price),
        inventory=data.inventory,
        kind=data.kind,
        consumption_days=data.consumption_days,
        image_url=data.image_url,
        sku=data.sku,
    )
    status = "created"
    if product is None:
        product = Product(external_id=data.external_id, created_at=data.created_at or utcnow())
        db.session.add(product)
        assign(product, **values)
    else:
        status = "updated" if assign(product, **values) else "unchanged"
    product.source_updated_at = data.updated_at or product.source_updated_at
    db.session.flush()

    wanted = {v.external_id: v for v in data.variants}
    existing = {
        v.external_id: v
        for v in db.session.scalars(
            select(ProductVariant).where(
                or_(
                    ProductVariant.product_id == product.id,
                    ProductVariant.external_id.in_(list(wanted)),
                )
            )
        )
    }
    for external_id, variant in wanted.items():
        row = existing.pop(external_id, None)
        if row is None:
            row = ProductVariant(external_id=external_id, product_id=product.id)
            db.session.add(row)
            status = "updated" if status == "unchanged" else status
        changed = assign(
            row,
            product_id=product.id,
            sku=variant.sku,
            title=variant.title[:255],
            price=money(variant.price),
            inventory=variant.inventory,
        )
        if changed and status == "unchanged":
            status = "updated"
    for gone in existing.values():  # variants removed from the product in the store
        db.session.delete(gone)
        status = "updated" if status == "unchanged" else status
    db.session.flush()
    if wanted:
        db.session.execute(
            update(OrderLine)
            .where(OrderLine.product_id.is_(None), OrderLine.variant_external_id.in_(list(wanted)))
            .values(product_id=product.id, category=product.category)
            .execution_options(synchronize_session=False)
        )
    return Outcome(product, status)
