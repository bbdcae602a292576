"""The catalogue: products across every category and kind, and how customers pick from it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from helpdesk.seeding import vocabulary as words
from helpdesk.seeding.draft import Draft, price_point

HISTORY_DAYS = 730  # the store's customers signed up over the last two years


@dataclass(frozen=True)
class ProductInfo:
    id: int
    external_id: str
    variant_external_id: str
    sku: str
    title: str
    category: str
    kind: str
    price: Decimal


def generate_catalogue(draft: Draft) -> list[ProductInfo]:
    """Products across every category and kind, each with one default variant."""
    rng = draft.rng
    categories = list(words.CATALOGUE)
    total = draft.params.product_count
    per_category = dict.fromkeys(categories, 1)
    extra = rng.choices(
        categories, weights=[words.CATEGORY_WEIGHTS[c] for c in categories], k=total - 8
    )
    for category in extra:
        per_category[category] += 1

    products: list[ProductInfo] = []
    for category in categories:
        kind, days, (low, high), qualifiers, bases = words.CATALOGUE[category]
        titles = [f"{q} {b}" for q in qualifiers for b in bases]
        rng.shuffle(titles)
        for n in range(per_category[category]):
            title = titles[n % len(titles)]
            if n >= len(titles):
                title = f"{title} No. {n // len(titles) + 1}"
            product_id = draft.new_id("product")
            variant_id = draft.new_id("product_variant")
            price = price_point(rng.uniform(low, high))
            sku = f"{category[:3].upper()}-{product_id:05d}"
            if kind == "high_value":
                inventory = rng.randint(0, 12)
            elif rng.random() < 0.08:
                inventory = 0
            else:
                inventory = rng.randint(1, 9) if rng.random() < 0.12 else rng.randint(10, 500)
            consumption = None
            if kind == "consumable":
                consumption = days * (3 if "1kg" in title else 2 if "500g" in title else 1)
            created = draft.now - dt.timedelta(days=HISTORY_DAYS + 60 - rng.randint(0, 50))
            info = ProductInfo(
                id=product_id,
                external_id=str(8_100_000_000 + product_id),
                variant_external_id=str(8_200_000_000 + variant_id),
                sku=sku,
                title=title,
                category=category,
                kind=kind,
                price=price,
            )
            products.append(info)
            draft.add(
                "product",
                {
                    "id": product_id,
                    "external_id": info.external_id,
                    "sku": sku,
                    "title": title,
                    "category": category,
                    "vendor": rng.choice(words.VENDORS),
                    "price": price,
                    "inventory": inventory,
                    "kind": kind,
                    "consumption_days": consumption,
                    "image_url": None,
                    "created_at": created,
                    "source_updated_at": created,
                },
            )
            draft.add(
                "product_variant",
                {
                    "id": variant_id,
                    "external_id": info.variant_external_id,
                    "product_id": product_id,
                    "sku": sku,
                    "title": "Default Title",
                    "price": price,
                    "inventory": inventory,
                },
            )
    return products


class Shelf:
    """Picks products the way shoppers do: a favourite category, replenishing consumables."""

    def __init__(self, draft: Draft, products: list[ProductInfo]):
        self.draft = draft
        self.by_category: dict[str, list[ProductInfo]] = {}
        for product in products:
            self.by_category.setdefault(product.category, []).append(product)
        self.category_weights = {c: words.CATEGORY_WEIGHTS[c] for c in self.by_category}

    def favourite(self) -> str:
        return self.draft.pick(self.category_weights)

    def pick_lines(
        self, favourite: str, repeat: ProductInfo | None = None
    ) -> list[tuple[ProductInfo, int]]:
        """One basket: 1-4 distinct products with quantities."""
        draft, rng = self.draft, self.draft.rng
        count = rng.choices((1, 2, 3, 4), weights=(55, 28, 12, 5))[0]
        chosen: dict[int, tuple[ProductInfo, int]] = {}
        for n in range(count):
            if n == 0 and repeat is not None and rng.random() < 0.5:
                product = repeat  # replenishing the consumable they bought last time
            else:
                category = favourite if rng.random() < 0.55 else draft.pick(self.category_weights)
                product = rng.choice(self.by_category[category])
            if product.kind == "consumable":
                quantity = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
            else:
                quantity = 1 if rng.random() < 0.9 else 2
            if product.id in chosen:
                quantity += chosen[product.id][1]
            chosen[product.id] = (product, quantity)
        return list(chosen.values())
