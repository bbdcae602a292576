"""Carts: abandoned ones, one in progress right now, and carts later recovered into orders."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from helpdesk.database import money
from helpdesk.seeding.catalogue import ProductInfo, Shelf
from helpdesk.seeding.draft import CustomerBrief, Draft

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
ABANDONED_SHARE = 0.10  # of customers with an abandoned cart in the last 20 days
IN_PROGRESS_SHARE = 0.03  # of customers with a cart open right now
RECOVERED_SHARE = 0.04  # of orders that completed a previously abandoned cart


class Carts:
    """Writes checkout rows in the Shopify line-item format."""

    def __init__(self, draft: Draft, shelf: Shelf):
        self.draft = draft
        self.shelf = shelf
        self.abandon = dt.timedelta(minutes=draft.settings.cart_abandon_minutes)

    @staticmethod
    def _items(lines: list[tuple[ProductInfo, int]]) -> tuple[list[dict], Decimal]:
        items = [
            {
                "product_id": p.external_id,
                "variant_id": p.variant_external_id,
                "sku": p.sku,
                "title": p.title,
                "quantity": q,
                "price": str(p.price),
                "line_price": str(money(p.price * q)),
            }
            for p, q in lines
        ]
        return items, money(sum((p.price * q for p, q in lines), Decimal("0")))

    def checkout(
        self,
        *,
        customer_id,
        email,
        lines,
        created,
        updated,
        abandoned,
        completed=None,
        order_id=None,
    ) -> tuple[str, str]:
        """One checkout row; returns its token and cart token."""
        draft = self.draft
        checkout_id = draft.new_id("checkout")
        token, cart_token = draft.hex(32), draft.hex(32)
        items, total = self._items(lines)
        draft.add(
            "checkout",
            {
                "id": checkout_id,
                "token": token,
                "cart_token": cart_token,
                "external_id": str(8_700_000_000 + checkout_id),
                "customer_id": customer_id,
                "email": email,
                "line_items": items,
                "total": total,
                "currency": draft.settings.currency,
                "recovery_url": f"https://{draft.settings.store_domain}/checkouts/{token}/recover",
                "created_at": created,
                "updated_at": updated,
                "completed_at": completed,
                "abandoned_at": abandoned,
                "recovered_order_id": order_id,
            },
        )
        return token, cart_token

    def maybe_recovered(
        self, customer: CustomerBrief, order_id: int, placed, lines
    ) -> tuple[str, str] | None:
        """Now and then an order completed a cart abandoned a few hours or days before;
        returns that checkout's token and cart token (the order carries them)."""
        rng = self.draft.rng
        if rng.random() >= RECOVERED_SHARE:
            return None
        created = (placed - rng.uniform(3, 48) * HOUR).replace(microsecond=0)
        created = max(created, customer.created_at)
        updated = created + 5 * MINUTE
        abandoned = updated + self.abandon
        if abandoned >= placed:
            return None
        return self.checkout(
            customer_id=customer.id,
            email=customer.email,
            lines=lines,
            created=created,
            updated=updated,
            abandoned=abandoned,
            completed=placed,
            order_id=order_id,
        )

    def for_customer(self, customer: CustomerBrief) -> None:
        """An abandoned cart for some customers, a cart in progress right now for a few."""
        draft, rng, now = self.draft, self.draft.rng, self.draft.now
        favourite = self.shelf.favourite()
        roll = rng.random()
        if roll < ABANDONED_SHARE:
            updated = draft.between(max(customer.created_at, now - 20 * DAY), now - 90 * MINUTE)
            created = max(customer.created_at, updated - rng.uniform(2, 30) * MINUTE)
            abandoned = updated + self.abandon
            self.checkout(
                customer_id=customer.id,
                email=customer.email,
                lines=self.shelf.pick_lines(favourite),
                created=created,
                updated=updated,
                abandoned=abandoned if abandoned <= now else None,
            )
        elif roll < ABANDONED_SHARE + IN_PROGRESS_SHARE:
            updated = now - rng.uniform(1, max(2, self.abandon / MINUTE - 5)) * MINUTE
            updated = max(updated.replace(microsecond=0), customer.created_at)
            self.checkout(
                customer_id=customer.id,
                email=customer.email,
                lines=self.shelf.pick_lines(favourite),
                created=updated - MINUTE,
                updated=updated,
                abandoned=None,
            )

    def guest(self, email: str, in_progress: bool = False) -> None:
        """A cart of a visitor who never created an account (email only)."""
        if in_progress:
            updated = self.draft.ago(MINUTE, max(2 * MINUTE, self.abandon - 5 * MINUTE))
        else:
            updated = self.draft.ago(self.abandon + HOUR, 14 * DAY)
        self.checkout(
            customer_id=None,
            email=email,
            lines=self.shelf.pick_lines(self.shelf.favourite()),
            created=updated - 4 * MINUTE,
            updated=updated,
            abandoned=None if in_progress else updated + self.abandon,
        )
