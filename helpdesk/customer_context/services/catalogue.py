"""The catalogue: products with kinds and variants, and matching order lines to them."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import literal, or_, select, union_all, update

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

    def prefetch(self, lines: list[LineData]) -> ProductMatcher:
        """Look up every key of `lines` not seen yet (variant id, product id, sku) in ONE
        statement, with the same answers `match` would get one key at a time."""
        if self._complete:
            return self
        wanted: dict[str, set[str]] = {"variant": set(), "product": set(), "sku": set()}
        for line in lines:
            for kind, key in (
                ("variant", line.variant_external_id),
                ("product", line.product_external_id),
                ("sku", line.sku),
            ):
                if key and (kind, key) not in self._cache:
                    wanted[kind].add(key)
        if not any(wanted.values()):
            return self
        columns = (Product.id, Product.category, Product.price)
        parts = []
        if wanted["variant"]:
            parts.append(
                select(literal("variant"), ProductVariant.external_id, *columns)
                .select_from(Product)
                .join(ProductVariant, ProductVariant.product_id == Product.id)
                .where(ProductVariant.external_id.in_(sorted(wanted["variant"])))
            )
        if wanted["product"]:
            parts.append(
                select(literal("product"), Product.external_id, *columns).where(
                    Product.external_id.in_(sorted(wanted["product"]))
                )
            )
        if wanted["sku"]:
            skus = sorted(wanted["sku"])
            parts.append(select(literal("sku"), Product.sku, *columns).where(Product.sku.in_(skus)))
            parts.append(
                select(literal("sku"), ProductVariant.sku, *columns)
                .select_from(Product)
                .join(ProductVariant, ProductVariant.product_id == Product.id)
                .where(ProductVariant.sku.in_(skus))
            )
        found: dict[tuple[str, str], tuple[int, str | None, Decimal]] = {}
        statement = parts[0] if len(parts) == 1 else union_all(*parts)
        for kind, key, product_id, category, price in db.session.execute(statement):
            held = found.get((kind, key))
            # A sku held by several products (or variants) matches the lowest product id,
            # as the one-key look-up's ORDER BY product.id LIMIT 1 does.
            if held is None or product_id < held[0]:
                found[(kind, key)] = (product_id, category, money(price))
        for kind, keys in wanted.items():
            for key in keys:
                self._cache[(kind, key)] = found.get((kind, key))
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
