"""The store's commercial history: customers with their orders, fulfilments, refunds, reviews,
loyalty ledger and carts, generated customer by customer so memory stays flat at any size."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

from helpdesk.database import money
from helpdesk.seeding import vocabulary as words
from helpdesk.seeding.carts import Carts
from helpdesk.seeding.catalogue import HISTORY_DAYS, ProductInfo, Shelf
from helpdesk.seeding.draft import CustomerBrief, Draft, NegativeReview, OrderBrief

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)
MINUTE = dt.timedelta(minutes=1)
FREE_SHIPPING_FROM = Decimal("40")
SHIPPING = Decimal("3.95")
REDEEM_POINTS = 500  # points per redemption (worth 5.00 off)
REDEEM_NOTE = "Redeemed for 5.00 off"
CANCELLED_SHARE = 0.03  # of orders
REFUND_SHARE = 0.06  # of shipped orders
REVIEW_SHARE = 0.22  # of shipped orders
ORDER_CAP = 40  # the most orders one customer gets (unless the volume demands more)
PARETO_ALPHA = 1.1  # tail of repeat buyers' order counts: most buy 2-4 times, a few 25-40


# --- how many orders each customer places ----------------------------------------------------


def order_counts(rng, customers: int, orders: int) -> list[int]:
    """Orders per customer: ~10% never buy, about half of buyers buy once, a long tail.

    The counts add up to exactly `orders`. Repeat buyers share the rest by Pareto weights,
    capped at ORDER_CAP unless the volume per repeat buyer needs more.
    """
    buyers = min(customers, orders, max(1, round(customers * 0.9)))
    repeaters = min(buyers // 2, orders - buyers)
    extra = orders - buyers - repeaters  # orders beyond the second for repeat buyers
    counts = [1] * (buyers - repeaters)
    if repeaters:
        cap_extra = max(ORDER_CAP - 2, math.ceil(extra / repeaters))
        weights = [rng.paretovariate(PARETO_ALPHA) for _ in range(repeaters)]
        extras = [0] * repeaters
        open_slots = list(range(repeaters))
        while extra > 0 and open_slots:
            # Each further order goes to a repeat buyer picked by weight; the full ones drop out.
            picks = rng.choices(open_slots, weights=[weights[i] for i in open_slots], k=extra)
            extra = 0
            for i in picks:
                if extras[i] < cap_extra:
                    extras[i] += 1
                else:
                    extra += 1
            open_slots = [i for i in open_slots if extras[i] < cap_extra]
        counts += [2 + e for e in extras]
    counts += [0] * (customers - buyers)
    rng.shuffle(counts)
    return counts


# --- customers and their histories -----------------------------------------------------------


def generate_customers(draft: Draft, products: list[ProductInfo]) -> Iterator[None]:
    """Customers in sign-up order with their whole history; yields when a batch is ready."""
    rng = draft.rng
    params = draft.params
    counts = order_counts(rng, params.customers, params.orders)
    # Sign-up ages skew recent (a growing store); big spenders have been around longer.
    signups = []
    for count in counts:
        days_ago = HISTORY_DAYS * rng.random() ** 1.4
        if count > 1:
            days_ago = max(days_ago, min(HISTORY_DAYS, count * 14 + rng.uniform(0, 60)))
        signups.append((draft.now - dt.timedelta(days=days_ago), count))
    signups.sort(key=lambda pair: pair[0])

    shelf = Shelf(draft, products)
    carts = Carts(draft, shelf)
    history = _History(draft, shelf, carts)
    used_emails: set[str] = set()
    for created, count in signups:
        created = created.replace(microsecond=0)
        brief, row = _customer_row(draft, created, used_emails)
        draft.customers.append(brief)
        placed = history.write(brief, count)
        # Touches are stamped by the orders that carried them (as ingestion does).
        row["first_touch_at"] = placed[0] if placed else created
        row["last_touch_at"] = placed[-1] if placed else created
        if draft.pending() >= 20_000:
            yield
    _guest_checkouts(draft, carts, used_emails)
    yield


def _email(draft: Draft, first: str, last: str, used: set[str], domain: str | None = None) -> str:
    rng = draft.rng
    first_l, last_l = first.lower(), last.lower().replace("'", "")
    pattern = rng.choice(
        (
            f"{first_l}.{last_l}",
            f"{first_l}{last_l}",
            f"{first_l[0]}.{last_l}",
            f"{first_l}_{last_l}",
            f"{first_l}{rng.randint(1, 99)}",
            f"{last_l}.{first_l}",
        )
    )
    domain = domain or draft.pick(dict(words.EMAIL_DOMAINS))
    email = f"{pattern}@{domain}"
    while email in used:
        email = f"{pattern}{rng.randint(2, 9999)}@{domain}"
    used.add(email)
    return email


def _customer_row(draft: Draft, created: dt.datetime, used: set[str]) -> tuple[CustomerBrief, dict]:
    rng = draft.rng
    customer_id = draft.new_id("customer")
    first, last = rng.choice(words.FIRST_NAMES), rng.choice(words.LAST_NAMES)
    email = _email(draft, first, last, used)
    sources = {s[:3]: s[3] for s in words.TRAFFIC_SOURCES}
    first_touch = draft.pick(sources)
    last_touch = first_touch if rng.random() < 0.6 else draft.pick(sources)
    accepts = rng.random() < 0.62
    tags = [rng.choice(words.CUSTOMER_TAGS)] if rng.random() < 0.07 else []
    row = {
        "id": customer_id,
        "external_id": str(7_100_000_000 + customer_id),
        "email": email,
        "first_name": first,
        "last_name": last,
        "phone": f"+44 7700 900{rng.randint(0, 999):03d}" if rng.random() < 0.55 else None,
        "accepts_marketing": accepts,
        "marketing_updated_at": created,
        "first_touch_source": first_touch[0],
        "first_touch_medium": first_touch[1],
        "first_touch_campaign": first_touch[2],
        "last_touch_source": last_touch[0],
        "last_touch_medium": last_touch[1],
        "last_touch_campaign": last_touch[2],
        "tags": tags,
        "note": rng.choice(words.NOTES) if rng.random() < 0.03 else None,
        "created_at": created,
        "source_updated_at": created,
        "first_touch_at": created,  # restamped from the orders once they exist
        "last_touch_at": created,
    }
    draft.add("customer", row)
    brief = CustomerBrief(
        id=customer_id,
        email=email,
        first_name=first,
        created_at=created,
        first_touch=first_touch,
        last_touch=last_touch,
    )
    return brief, row


@dataclass
class _Fulfilment:
    at: dt.datetime
    tracking_number: str
    tracking_url: str


class _History:
    """Writes one customer's orders, lines, fulfilments, refunds, reviews, points and carts."""

    def __init__(self, draft: Draft, shelf: Shelf, carts: Carts):
        self.draft = draft
        self.shelf = shelf
        self.carts = carts
        self.points_rate = Decimal(str(draft.settings.points_per_unit))

    def write(self, customer: CustomerBrief, count: int) -> list[dt.datetime]:
        """The customer's `count` orders spread over their active life, then their carts;
        returns the orders' times."""
        draft, rng, now = self.draft, self.draft.rng, self.draft.now
        balance = 0
        placed_times: list[dt.datetime] = []
        if count:
            churned = rng.random() < (0.35 if count <= 2 else 0.2)
            gap = rng.uniform(100, 540) if churned else rng.expovariate(1 / 20)
            end = max(now - gap * DAY, customer.created_at + HOUR)
            end = min(end, now - 10 * MINUTE)
            first = min(customer.created_at + rng.expovariate(1 / 2) * DAY, end)
            times = [first] + sorted(draft.between(first, end) for _ in range(count - 1))
            favourite = self.shelf.favourite()
            last_consumable: ProductInfo | None = None
            for n, placed in enumerate(times):
                touch = None
                if n == 0:
                    touch = customer.first_touch
                elif n == count - 1:
                    touch = customer.last_touch
                lines = self.shelf.pick_lines(favourite, last_consumable)
                consumables = [p for p, _ in lines if p.kind == "consumable"]
                last_consumable = consumables[0] if consumables else last_consumable
                placed = placed.replace(microsecond=0)
                placed_times.append(placed)
                balance = self._order(customer, placed, lines, n == 0, touch, balance)
        self.carts.for_customer(customer)
        return placed_times

    def _order(self, customer, placed, lines, first_order, touch, balance) -> int:
        """One order with its lines, fulfilment, refund, points and review; returns points."""
        draft, rng = self.draft, self.draft.rng
        order_id = draft.new_id("order")
        name = f"#{1000 + order_id}"
        subtotal = sum((p.price * q for p, q in lines), Decimal("0"))
        codes: list[dict] = []
        discount = Decimal("0")
        if (first_order and rng.random() < 0.2) or rng.random() < 0.08:
            code, rate = (
                words.DISCOUNT_CODES[0] if first_order else rng.choice(words.DISCOUNT_CODES[1:])
            )
            discount = money(subtotal * Decimal(str(rate)))
            codes = [{"code": code, "amount": str(discount), "type": "percentage"}]
        shipping = Decimal("0") if subtotal >= FREE_SHIPPING_FROM else SHIPPING
        total = money(subtotal - discount + shipping)

        cancelled_at = fulfilment = refund = None
        if rng.random() < CANCELLED_SHARE:
            cancelled_at = draft.capped(placed + rng.uniform(0.5, 30) * HOUR)
        else:
            fulfilment = self._fulfil(order_id, placed)
            if fulfilment is not None:
                refund = self._refund(customer, order_id, fulfilment.at, lines, total)
        refunded = refund["amount"] if refund else Decimal("0")
        financial = "paid"
        if cancelled_at is not None:
            financial = "voided"
        elif refund is not None:
            financial = "refunded" if refunded == total else "partially_refunded"
        landing = None
        if touch is not None and touch[2]:
            landing = f"/?utm_source={touch[0]}&utm_medium={touch[1]}&utm_campaign={touch[2]}"
        order_row = {
            "id": order_id,
            "external_id": str(8_300_000_000 + order_id),
            "number": 1000 + order_id,
            "name": name,
            "customer_id": customer.id,
            "email": customer.email,
            "placed_at": placed,
            "subtotal": money(subtotal),
            "total": total,
            "currency": draft.settings.currency,
            "financial_status": financial,
            "fulfillment_status": "fulfilled" if fulfilment else None,
            "tracking_number": fulfilment.tracking_number if fulfilment else None,
            "tracking_url": fulfilment.tracking_url if fulfilment else None,
            "source": draft.pick({"web": 88, "iphone": 6, "android": 3, "pos": 3}),
            "landing_site": landing,
            "referring_site": None,
            "discount_codes": codes,
            "cancelled_at": cancelled_at,
            "test": False,
            "created_at": placed,
            "source_updated_at": cancelled_at or (fulfilment.at if fulfilment else placed),
            "checkout_token": None,
            "cart_token": None,
        }
        draft.add("order", order_row)
        for product, quantity in lines:
            line_id = draft.new_id("order_line")
            draft.add(
                "order_line",
                {
                    "id": line_id,
                    "order_id": order_id,
                    "external_id": str(8_600_000_000 + line_id),
                    "product_id": product.id,
                    "variant_external_id": product.variant_external_id,
                    "sku": product.sku,
                    "title": product.title,
                    "category": product.category,
                    "quantity": quantity,
                    "price": product.price,
                },
            )
        if refund is not None:
            draft.add("refund", refund)
        if cancelled_at is not None:
            return balance

        customer.orders_count += 1
        customer.spent += total - refunded
        customer.recent_orders = customer.recent_orders[-2:] + [
            OrderBrief(
                order_id,
                name,
                placed,
                lines[0][0].title,
                fulfilment.tracking_url if fulfilment else None,
                refund is not None,
            )
        ]
        balance = self._loyalty(customer, order_id, name, placed, total, refund, balance)
        if fulfilment is not None:
            self._review(customer, order_id, lines[0][0], fulfilment.at, refund is not None)
        recovered = self.carts.maybe_recovered(customer, order_id, placed, lines)
        if recovered is not None:  # the completed cart and its order point at each other
            order_row["checkout_token"], order_row["cart_token"] = recovered
        return balance

    def _fulfil(self, order_id: int, placed: dt.datetime) -> _Fulfilment | None:
        """Shipped with tracking unless placed in the last day or two."""
        draft, rng = self.draft, self.draft.rng
        age = draft.now - placed
        if not (age > 2 * DAY or (age > DAY and rng.random() < 0.5)):
            return None
        at = draft.capped(placed + rng.uniform(4, 40) * HOUR)
        carrier, url = rng.choice(words.CARRIERS)
        number = _tracking_number(draft, carrier)
        fulfilment_id = draft.new_id("fulfillment")
        draft.add(
            "fulfillment",
            {
                "id": fulfilment_id,
                "external_id": str(8_400_000_000 + fulfilment_id),
                "order_id": order_id,
                "status": "success",
                "shipment_status": "delivered" if age > 5 * DAY else "in_transit",
                "tracking_company": carrier,
                "tracking_number": number,
                "tracking_url": url.format(number),
                "created_at": at,
                "source_updated_at": at,
            },
        )
        return _Fulfilment(at, number, url.format(number))

    def _refund(self, customer, order_id, fulfilled_at, lines, total) -> dict | None:
        """Now and then a full or one-line refund a few days after delivery."""
        draft, rng = self.draft, self.draft.rng
        if rng.random() >= REFUND_SHARE:
            return None
        refunded_at = fulfilled_at + rng.uniform(2, 20) * DAY
        if refunded_at >= draft.now - HOUR:
            return None
        if rng.random() < 0.35 or len(lines) == 1:
            amount = total
        else:
            product, quantity = rng.choice(lines)
            amount = min(total, money(product.price * quantity))
        refund_id = draft.new_id("refund")
        return {
            "id": refund_id,
            "external_id": str(8_500_000_000 + refund_id),
            "order_id": order_id,
            "customer_id": customer.id,
            "amount": amount,
            "note": rng.choice(words.REFUND_NOTES),
            "created_at": refunded_at.replace(microsecond=0),
        }

    def _loyalty(self, customer, order_id, name, placed, total, refund, balance) -> int:
        """The ledger as `customer_context.loyalty` keeps it: earn floor(total x rate) on each
        counted order (ref `order:<id>`), reverse a refund down to what the net amount earns
        (ref `order:<id>:refund:<id>`), and now and then a redemption."""
        ref = f"order:{order_id}"
        if balance >= REDEEM_POINTS and self.draft.rng.random() < 0.2:
            self._points(customer.id, -REDEEM_POINTS, "redeem", ref, placed, REDEEM_NOTE)
            balance -= REDEEM_POINTS
        earned = self._points_for(total)
        if earned:
            self._points(customer.id, earned, "earn", ref, placed, None)
            balance += earned
        if refund is not None and earned:
            delta = min(earned, self._points_for(total - refund["amount"])) - earned
            if delta < 0:
                self._points(
                    customer.id,
                    delta,
                    "reversal",
                    f"{ref}:refund:{refund['id']}",
                    refund["created_at"],
                    f"Refund of {refund['amount']} on order {name}",
                )
                balance += delta
        return balance

    def _points_for(self, amount: Decimal) -> int:
        return max(0, math.floor(amount * self.points_rate))

    def _points(self, customer_id, points, reason, ref, at, note) -> None:
        self.draft.add(
            "loyalty_entry",
            {
                "id": self.draft.new_id("loyalty_entry"),
                "customer_id": customer_id,
                "points": points,
                "reason": reason,
                "ref": ref,
                "note": note,
                "actor_id": None,
                "created_at": at,
            },
        )

    def _review(self, customer, order_id, product, fulfilled_at, refunded) -> None:
        """Some delivered orders get a review; refunded ones skew negative."""
        draft, rng = self.draft, self.draft.rng
        if rng.random() >= REVIEW_SHARE:
            return
        received = fulfilled_at + rng.uniform(6, 20) * DAY
        if received > draft.now - HOUR:
            return
        received = received.replace(microsecond=0)
        weights = (10, 10, 20, 30, 30) if refunded else (50, 26, 10, 7, 7)
        rating = rng.choices((5, 4, 3, 2, 1), weights=weights)[0]
        body = rng.choice(words.REVIEW_TEXTS[rating])
        review_id = draft.new_id("review")
        draft.add(
            "review",
            {
                "id": review_id,
                "customer_id": customer.id,
                "order_id": order_id,
                "product_id": product.id,
                "rating": rating,
                "body": body,
                "source_ref": f"seed-review-{review_id}",
                "publishable": rating >= 4,
                "received_at": received,
            },
        )
        if rating <= 2 and received >= draft.now - 30 * DAY:
            draft.negative_reviews.append(
                NegativeReview(review_id, customer.id, order_id, rating, body, received)
            )


def _guest_checkouts(draft: Draft, carts: Carts, used: set[str]) -> None:
    """Carts of visitors who never created an account; the first one is still in progress."""
    for n in range(max(3, draft.params.customers // 25)):
        first, last = draft.rng.choice(words.FIRST_NAMES), draft.rng.choice(words.LAST_NAMES)
        email = _email(draft, first, last, used, domain=words.GUEST_EMAIL_DOMAIN)
        carts.guest(email, in_progress=n == 0)


def _tracking_number(draft: Draft, carrier: str) -> str:
    if carrier == "Royal Mail":
        return f"RM{draft.digits(9)}GB"
    if carrier == "DPD":
        return draft.digits(14)
    if carrier == "Evri":
        return f"H{draft.hex(15).upper()}"
    return f"1Z{draft.hex(16).upper()}"
