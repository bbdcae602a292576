"""Marshmallow schemas of Shopify webhook bodies, loading into the service dataclasses.

A webhook body is the inner object (`{...}`, not `{"order": {...}}`). Unknown keys are
ignored; Shopify sends null for most absent values, so nearly every field allows None.
"""

from __future__ import annotations

from decimal import Decimal

from marshmallow import ValidationError, fields, post_load, validate

from helpdesk.customer_context.schemas import (
    MAX_INT,
    MAX_QUANTITY,
    CheckoutData,
    CustomerData,
    ExternalId,
    FulfillmentData,
    IncomingSchema,
    LineData,
    LowerEmail,
    Money,
    OrderData,
    ProductData,
    RefundData,
    Timestamp,
    VariantData,
    opt,
    opt_str,
    product_kind,
    split_tags,
    touch_from_visit,
)
from helpdesk.database import CENT

# --- Shopify payloads ----------------------------------------------------------------------


class MarketingConsentSchema(IncomingSchema):
    state = opt_str(32)
    consent_updated_at = opt(Timestamp)


class AddressSchema(IncomingSchema):
    phone = opt_str(40)


class ShopifyCustomerSchema(IncomingSchema):
    id = ExternalId(required=True)
    email = opt(LowerEmail)
    first_name = opt_str(120)
    last_name = opt_str(120)
    phone = opt_str(40)
    accepts_marketing = opt(fields.Bool)
    accepts_marketing_updated_at = opt(Timestamp)
    email_marketing_consent = opt(fields.Nested, nested=MarketingConsentSchema)
    default_address = opt(fields.Nested, nested=AddressSchema)
    tags = opt_str(2000)
    note = opt(fields.Str)
    created_at = opt(Timestamp)
    updated_at = opt(Timestamp)

    @post_load
    def to_data(self, data, **kwargs) -> CustomerData:
        consent = data.get("email_marketing_consent")
        accepts = data.get("accepts_marketing")
        consent_at = data.get("accepts_marketing_updated_at")
        if consent and consent.get("state"):
            # The newer consent object wins over the deprecated boolean.
            accepts = consent["state"].lower() == "subscribed"
            consent_at = consent.get("consent_updated_at") or consent_at
        return CustomerData(
            external_id=data["id"],
            email=data.get("email"),
            first_name=data.get("first_name"),
            last_name=data.get("last_name"),
            phone=data.get("phone") or (data.get("default_address") or {}).get("phone") or None,
            accepts_marketing=accepts,
            marketing_updated_at=consent_at or data.get("updated_at"),
            tags=split_tags(data.get("tags")) if data.get("tags") is not None else None,
            note=data.get("note"),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
        )


class ShopifyLineItemSchema(IncomingSchema):
    id = opt(ExternalId)
    variant_id = opt(ExternalId)
    product_id = opt(ExternalId)
    sku = opt_str(120)
    title = opt_str()
    name = opt_str()
    quantity = fields.Int(required=True, validate=validate.Range(min=0, max=MAX_QUANTITY))
    price = Money(required=True)

    @post_load
    def to_data(self, data, **kwargs) -> LineData:
        return LineData(
            title=(data.get("name") or data.get("title") or "")[:255],
            quantity=data["quantity"],
            price=data["price"],
            sku=data.get("sku") or None,
            external_id=data.get("id"),
            variant_external_id=data.get("variant_id"),
            product_external_id=data.get("product_id"),
        )


class RefundTransactionSchema(IncomingSchema):
    kind = opt_str(32)
    status = opt_str(32)
    amount = Money(required=True)


class RefundedLineSchema(IncomingSchema):
    price = Money(required=True)
    total_discount = opt(Money)


class RefundLineItemSchema(IncomingSchema):
    quantity = fields.Int(required=True, validate=validate.Range(min=0, max=MAX_QUANTITY))
    subtotal = opt(Money)
    line_item = opt(fields.Nested, nested=RefundedLineSchema)


class ShopifyRefundSchema(IncomingSchema):
    id = ExternalId(required=True)
    order_id = ExternalId(required=True)
    created_at = opt(Timestamp)
    note = opt(fields.Str)
    transactions = fields.List(fields.Nested(RefundTransactionSchema), load_default=list)
    refund_line_items = fields.List(fields.Nested(RefundLineItemSchema), load_default=list)

    @post_load
    def to_data(self, data, **kwargs) -> RefundData:
        # Money actually returned: successful refund transactions; a refund recorded without
        # a transaction (e.g. restock only) falls back to the refunded lines' subtotal.
        paid = [
            t["amount"]
            for t in data["transactions"]
            if (t.get("kind") or "").lower() == "refund"
            and (t.get("status") or "success").lower() == "success"
        ]
        if paid:
            amount = sum(paid, Decimal("0.00"))
        else:
            amount = Decimal("0.00")
            for item in data["refund_line_items"]:
                if item.get("subtotal") is not None:
                    amount += item["subtotal"]
                elif item.get("line_item"):
                    line = item["line_item"]
                    amount += line["price"] * item["quantity"] - (line.get("total_discount") or 0)
        return RefundData(
            amount=amount.quantize(CENT),
            external_id=data["id"],
            order_external_id=data["order_id"],
            note=data.get("note"),
            created_at=data.get("created_at"),
        )


class FulfilledLineSchema(IncomingSchema):
    id = opt(ExternalId)


class ShopifyFulfillmentSchema(IncomingSchema):
    id = ExternalId(required=True)
    order_id = ExternalId(required=True)
    status = opt_str(32)
    shipment_status = opt_str(32)
    tracking_company = opt_str(120)
    tracking_number = opt_str(120)
    tracking_numbers = fields.List(fields.Str(), load_default=list)
    tracking_url = opt_str(500)
    tracking_urls = fields.List(fields.Str(), load_default=list)
    line_items = fields.List(fields.Nested(FulfilledLineSchema), load_default=list)
    created_at = opt(Timestamp)
    updated_at = opt(Timestamp)

    @post_load
    def to_data(self, data, **kwargs) -> FulfillmentData:
        number = data.get("tracking_number") or next(iter(data["tracking_numbers"]), None)
        url = data.get("tracking_url") or next(iter(data["tracking_urls"]), None)
        return FulfillmentData(
            external_id=data["id"],
            order_external_id=data["order_id"],
            status=data.get("status"),
            shipment_status=data.get("shipment_status"),
            tracking_company=data.get("tracking_company"),
            tracking_number=(number or None) and number[:120],
            tracking_url=(url or None) and url[:500],
            line_external_ids=[li["id"] for li in data["line_items"] if li.get("id")],
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
        )


class DiscountCodeSchema(IncomingSchema):
    code = fields.Str(required=True)
    amount = opt(Money)
    type = opt_str(32)


class ShopifyOrderSchema(IncomingSchema):
    id = ExternalId(required=True)
    name = opt_str(64)
    order_number = opt(fields.Int, validate=validate.Range(min=0, max=MAX_INT))
    number = opt(fields.Int, validate=validate.Range(min=0, max=MAX_INT))
    email = opt(LowerEmail)
    customer = opt(fields.Nested, nested=ShopifyCustomerSchema)
    created_at = Timestamp(required=True)
    processed_at = opt(Timestamp)
    updated_at = opt(Timestamp)
    cancelled_at = opt(Timestamp)
    test = fields.Bool(load_default=False, allow_none=True)
    financial_status = opt_str(32)
    fulfillment_status = opt_str(32)
    currency = opt(fields.Str, validate=validate.Length(equal=3))
    subtotal_price = opt(Money)
    total_price = Money(required=True)
    discount_codes = fields.List(fields.Nested(DiscountCodeSchema), load_default=list)
    source_name = opt_str(64)
    landing_site = opt_str(1000)
    referring_site = opt_str(1000)
    checkout_token = opt_str(64)
    cart_token = opt_str(64)
    checkout_id = opt(ExternalId)
    line_items = fields.List(fields.Nested(ShopifyLineItemSchema), load_default=list)
    fulfillments = fields.List(fields.Nested(ShopifyFulfillmentSchema), load_default=list)
    refunds = fields.List(fields.Nested(ShopifyRefundSchema), load_default=list)

    @post_load
    def to_data(self, data, **kwargs) -> OrderData:
        number = data.get("order_number") or data.get("number")
        customer = data.get("customer")
        email = data.get("email") or (customer.email if customer else None)
        return OrderData(
            external_id=data["id"],
            name=data.get("name") or (f"#{number}" if number else f"#{data['id']}"),
            number=number,
            email=email,
            customer=customer,
            placed_at=data.get("processed_at") or data["created_at"],
            total=data["total_price"],
            subtotal=data.get("subtotal_price"),
            currency=(data.get("currency") or "").upper() or None,
            financial_status=data.get("financial_status"),
            fulfillment_status=data.get("fulfillment_status"),
            source=data.get("source_name"),
            landing_site=data.get("landing_site"),
            referring_site=data.get("referring_site"),
            touch=touch_from_visit(data.get("landing_site"), data.get("referring_site")),
            discount_codes=[
                {"code": d["code"], "amount": str(d["amount"]) if d.get("amount") else None}
                for d in data["discount_codes"]
            ],
            cancelled_at=data.get("cancelled_at"),
            test=bool(data.get("test")),
            checkout_token=data.get("checkout_token"),
            cart_token=data.get("cart_token"),
            checkout_external_id=data.get("checkout_id"),
            lines=data["line_items"],
            refunds=data["refunds"],
            fulfillments=data["fulfillments"],
            updated_at=data.get("updated_at"),
        )


class CheckoutLineSchema(IncomingSchema):
    title = opt_str()
    variant_title = opt_str()
    quantity = fields.Int(required=True, validate=validate.Range(min=0, max=MAX_QUANTITY))
    price = Money(required=True)
    sku = opt_str(120)
    product_id = opt(ExternalId)
    variant_id = opt(ExternalId)


class ShopifyCheckoutSchema(IncomingSchema):
    token = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    cart_token = opt_str(64)
    id = opt(ExternalId)
    email = opt(LowerEmail)
    customer = opt(fields.Nested, nested=ShopifyCustomerSchema)
    line_items = fields.List(fields.Nested(CheckoutLineSchema), load_default=list)
    total_price = Money(required=True)
    currency = opt(fields.Str, validate=validate.Length(equal=3))
    abandoned_checkout_url = opt_str(1000)
    completed_at = opt(Timestamp)
    created_at = opt(Timestamp)
    updated_at = opt(Timestamp)

    @post_load
    def to_data(self, data, **kwargs) -> CheckoutData:
        customer = data.get("customer")
        return CheckoutData(
            token=data["token"],
            cart_token=data.get("cart_token"),
            external_id=data.get("id"),
            email=data.get("email") or (customer.email if customer else None),
            customer=customer,
            line_items=[
                {
                    "title": line.get("title") or "",
                    "variant_title": line.get("variant_title"),
                    "quantity": line["quantity"],
                    "price": str(line["price"]),
                    "sku": line.get("sku"),
                    "product_id": line.get("product_id"),
                    "variant_id": line.get("variant_id"),
                }
                for line in data["line_items"]
            ],
            total=data["total_price"],
            currency=(data.get("currency") or "").upper() or None,
            recovery_url=data.get("abandoned_checkout_url"),
            completed_at=data.get("completed_at"),
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
        )


class ShopifyVariantSchema(IncomingSchema):
    id = ExternalId(required=True)
    sku = opt_str(120)
    title = opt_str()
    price = Money(load_default=Decimal("0.00"))
    inventory_quantity = opt(fields.Int, validate=validate.Range(min=-MAX_INT, max=MAX_INT))

    @post_load
    def to_data(self, data, **kwargs) -> VariantData:
        return VariantData(
            external_id=data["id"],
            sku=data.get("sku") or None,
            title=data.get("title") or "",
            price=data["price"],
            inventory=data.get("inventory_quantity"),
        )


class ImageSchema(IncomingSchema):
    src = opt_str(500)


class ShopifyProductSchema(IncomingSchema):
    id = ExternalId(required=True)
    title = fields.Str(required=True, validate=validate.Length(min=1, max=255))
    product_type = opt_str(120)
    vendor = opt_str(120)
    tags = opt_str(2000)
    variants = fields.List(fields.Nested(ShopifyVariantSchema), load_default=list)
    image = opt(fields.Nested, nested=ImageSchema)
    images = fields.List(fields.Nested(ImageSchema), load_default=list)
    created_at = opt(Timestamp)
    updated_at = opt(Timestamp)

    @post_load
    def to_data(self, data, **kwargs) -> ProductData:
        try:
            kind, days = product_kind(split_tags(data.get("tags")), data.get("product_type"))
        except ValueError as exc:
            raise ValidationError({"tags": [str(exc)]}) from None
        stock = [v.inventory for v in data["variants"] if v.inventory is not None]
        if stock and abs(sum(stock)) > MAX_INT:
            raise ValidationError({"variants": ["Total inventory is out of range."]})
        image = data.get("image") or next(iter(data["images"]), None)
        return ProductData(
            external_id=data["id"],
            title=data["title"],
            category=(data.get("product_type") or "").strip() or None,
            vendor=data.get("vendor") or None,
            kind=kind,
            consumption_days=days,
            image_url=image.get("src") if image else None,
            variants=data["variants"],
            created_at=data.get("created_at"),
            updated_at=data.get("updated_at"),
        )
