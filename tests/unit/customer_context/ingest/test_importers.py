"""CSV importers: row-numbered errors, whole orders, idempotent re-imports, header mapping."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from helpdesk.customer_context.ingest.importers import (
    ImportAborted,
    import_shopify_customers,
    import_shopify_orders,
    import_transactions,
)
from helpdesk.customer_context.models import Customer, Order, Refund
from helpdesk.extensions import db
from tests.factories.customer_context import CustomerFactory, ProductFactory
from tests.unit.customer_context.ingest.conftest import DATA, table_counts

HEADER = "customer_id,email,order_id,placed_at,total,sku,quantity,category"


def _order(external_id: str) -> Order:
    db.session.expire_all()
    return db.session.scalars(select(Order).where(Order.external_id == external_id)).one()


def _customer(email: str) -> Customer:
    db.session.expire_all()
    return db.session.scalars(select(Customer).where(Customer.email == email)).one()


# --- transactions --------------------------------------------------------------------------


def test_transactions_sample_imports_orders_lines_and_customers(signals):
    report = import_transactions(DATA / "transactions.csv", bulk=False)

    assert report.ok, report.errors
    assert (report.rows, report.records) == (6, 5)
    assert report.outcomes == {"created": 5}
    multi = _order("T-101")
    assert multi.total == Decimal("85.50")
    assert multi.placed_at == dt.datetime(2024, 2, 10, 12, 30)
    assert multi.source == "import"
    assert [(line.sku, line.category, line.quantity) for line in multi.lines] == [
        ("BEAN-1KG", "coffee", 1),
        ("GRINDER-1", "equipment", 1),
    ]
    single = _order("T-100")
    assert [(line.sku, line.quantity, line.price) for line in single.lines] == [
        ("MUG-1", 2, Decimal("20.00"))
    ]
    assert _order("T-102").lines == []  # no sku or category: no line detail
    eli = _customer("eli@example.com")
    assert eli.external_id == "c-2"
    assert {
        o.external_id for o in db.session.scalars(select(Order).where(Order.customer_id == eli.id))
    } == {"T-102", "T-104"}  # ELI@ matched case-insensitively
    assert eli.created_at == dt.datetime(2024, 2, 11)  # customer since the first order
    assert eli.first_touch_source is None  # a CSV carries no visit data
    assert len(signals.of("order_placed")) == 5


def test_transactions_reimport_changes_nothing(signals):
    import_transactions(DATA / "transactions.csv")
    before = table_counts()
    placed = len(signals.of("order_placed"))

    report = import_transactions(DATA / "transactions.csv")

    assert report.ok
    assert report.outcomes == {"unchanged": 5}
    assert table_counts() == before
    assert len(signals.of("order_placed")) == placed


def test_bad_rows_are_reported_by_row_number_and_good_rows_imported(write_csv):
    path = write_csv(f"""
        {HEADER}
        c1,a@example.com,O1,2024-01-01,10.00,,,
        c2,not-an-email,O2,2024-01-02,11.00,,,
        c3,c@example.com,O3,yesterday,12.00,,,
        c4,d@example.com,O4,2024-01-04,-5,,,
        ,,O5,2024-01-05,13.00,,,
        c6,f@example.com,O6,2024-01-06,14.00,SKU,zero,
        c7,g@example.com,,2024-01-07,15.00,,,
        c8,h@example.com,O8,2024-01-08,16.00,,,
    """)

    report = import_transactions(path)

    assert not report.ok
    assert report.failed_rows == 6
    rows = {row: message for row, message in report.errors}
    assert sorted(rows) == [3, 4, 5, 6, 7, 8]
    assert "email: Not a valid email address." in rows[3]
    assert "placed_at: Not a valid date/time" in rows[4]
    assert "total:" in rows[5]
    assert "Give a customer_id or an email" in rows[6]
    assert "quantity: Not a valid integer." in rows[7]
    assert "order_id: missing" in rows[8]
    assert {o.external_id for o in db.session.scalars(select(Order))} == {"O1", "O8"}


def test_an_order_with_one_bad_row_is_not_imported_at_all(write_csv):
    path = write_csv(f"""
        {HEADER}
        c1,a@example.com,O1,2024-01-01,30.00,A,1,x
        c1,a@example.com,O1,2024-01-01,30.00,B,two,x
        c1,a@example.com,O1,2024-01-01,30.00,C,1,x
        c1,a@example.com,O2,2024-01-03,5.00,A,1,x
    """)

    report = import_transactions(path)

    assert report.failed_rows == 3
    [(row, message)] = report.errors
    assert row == 3 and "quantity" in message and "other 2 row(s)" in message
    assert [o.external_id for o in db.session.scalars(select(Order))] == ["O2"]


def test_total_given_on_first_row_only_or_disagreeing(write_csv):
    path = write_csv(f"""
        {HEADER}
        c1,a@example.com,O1,2024-01-01,30.00,A,1,x
        c1,a@example.com,O1,2024-01-01,,B,1,x
        c2,b@example.com,O2,2024-01-02,10.00,A,1,x
        c2,b@example.com,O2,2024-01-02,20.00,B,1,x
    """)

    report = import_transactions(path)

    assert _order("O1").total == Decimal("30.00")
    assert len(_order("O1").lines) == 2
    [(row, message)] = report.errors
    assert row == 4 and "disagree on total" in message


def test_rows_of_one_order_must_be_consecutive(write_csv):
    path = write_csv(f"""
        {HEADER}
        c1,a@example.com,O1,2024-01-01,30.00,A,1,x
        c2,b@example.com,O2,2024-01-02,10.00,A,1,x
        c1,a@example.com,O1,2024-01-01,30.00,B,1,x
    """)

    report = import_transactions(path)

    [(row, message)] = report.errors
    assert row == 4 and "consecutive" in message
    assert len(_order("O1").lines) == 1


def test_missing_required_header_aborts_before_writing(write_csv):
    path = write_csv("""
        customer_id,email,order_id,total
        c1,a@example.com,O1,30.00
    """)
    with pytest.raises(ImportAborted, match='"placed_at"'):
        import_transactions(path)
    assert table_counts()["order"] == 0


def test_headers_match_case_and_spacing_insensitively_in_any_order(write_csv):
    path = write_csv("""
        Total , Placed_At,ORDER_ID,Email,Customer_Id
        30.00,2024-01-01,O1,a@example.com,c1
    """)
    assert import_transactions(path).ok
    assert _order("O1").total == Decimal("30.00")


def test_unknown_customer_id_without_email_is_a_row_error(write_csv):
    CustomerFactory(email="known@example.com", external_id="c-known")
    path = write_csv(f"""
        {HEADER}
        c-known,,O1,2024-01-01,30.00,,,
        c-new,,O2,2024-01-01,30.00,,,
    """)

    report = import_transactions(path)

    assert _order("O1").customer.email == "known@example.com"
    [(row, message)] = report.errors
    assert row == 3 and "no email" in message


def test_lines_take_category_and_price_from_the_catalogue(write_csv):
    product = ProductFactory(sku="BEAN-1KG", category="coffee", price=Decimal("24.00"))
    path = write_csv(f"""
        {HEADER}
        c1,a@example.com,O1,2024-01-01,30.00,BEAN-1KG,1,
        c1,a@example.com,O1,2024-01-01,30.00,OTHER,1,misc
    """)

    import_transactions(path)

    lines = _order("O1").lines
    assert [(ln.product_id, ln.category, ln.price) for ln in lines] == [
        (product.id, "coffee", Decimal("24.00")),
        (None, "misc", Decimal("0.00")),
    ]


def test_not_utf8_file_aborts_with_the_row(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        (
            HEADER + "\nc1,a@example.com,O1,2024-01-01,1.00,,,\nc2,b@example.com,O2,2024-01-02,"
            "2.00,caf\xe9,1,\n"
        ).encode("latin-1")
    )
    with pytest.raises(ImportAborted, match="not UTF-8"):
        import_transactions(path, batch_size=1)


def test_batches_commit_and_progress_is_reported(write_csv):
    lines = [HEADER] + [f"c{i},p{i}@example.com,O{i},2024-01-01,{i}.00,,," for i in range(1, 26)]
    path = write_csv("\n".join(lines))
    seen = []

    report = import_transactions(
        path, batch_size=10, progress=lambda r: seen.append(r.rows), progress_every=10
    )

    assert report.records == 25 and report.ok
    assert seen == [10, 20]


def test_reimport_with_cancellation_cancels_the_order_once(write_csv, signals):
    shopify_header = "Name,Email,Total,Created at,Cancelled at,Lineitem quantity,Lineitem name,Id"
    first = write_csv(f"""
        {shopify_header}
        #1,a@example.com,10.00,2024-01-01 10:00:00 +0000,,1,Thing,9001
    """)
    cancelled = write_csv(f"""
        {shopify_header}
        #1,a@example.com,10.00,2024-01-01 10:00:00 +0000,2024-01-02 08:00:00 +0000,1,Thing,9001
    """)

    import_shopify_orders(first)
    import_shopify_orders(cancelled)
    again = import_shopify_orders(cancelled)

    assert _order("9001").cancelled_at == dt.datetime(2024, 1, 2, 8, 0)
    assert again.outcomes == {"unchanged": 1}
    assert len(signals.of("order_cancelled")) == 1


# --- Shopify order export ------------------------------------------------------------------


def test_shopify_order_export_sample(signals):
    report = import_shopify_orders(DATA / "shopify_orders_export.csv", bulk=False)

    assert report.ok, report.errors
    assert (report.rows, report.records) == (7, 4)
    first = _order("5500000001")
    assert first.name == "#1001"
    assert first.total == Decimal("63.45")
    assert first.subtotal == Decimal("63.50")
    assert first.placed_at == dt.datetime(2024, 3, 1, 15, 15, 10)  # Created at, -0500 -> UTC
    assert (first.financial_status, first.fulfillment_status) == ("paid", "fulfilled")
    assert first.discount_codes == [{"code": "WELCOME5", "amount": "5.00"}]
    assert first.source == "web"
    assert [(ln.title, ln.quantity, ln.price, ln.sku) for ln in first.lines] == [
        ("Coffee Beans 1kg", 2, Decimal("24.00"), "BEAN-1KG"),
        ("Paper Filters", 1, Decimal("15.50"), "FILTER-100"),
    ]
    bob = first.customer
    assert (bob.email, bob.first_name, bob.last_name) == ("bob.norman@example.com", "Bob", "Norman")
    assert bob.phone == "+44 20 7946 0001"

    assert _order("5500000002").customer.email == "alice@example.com"
    refund = db.session.scalars(select(Refund)).one()
    assert (refund.amount, refund.order_id) == (Decimal("10.00"), _order("5500000002").id)
    cancelled = _order("5500000003")
    assert cancelled.cancelled_at == dt.datetime(2024, 3, 5, 9, 30)
    assert cancelled.counted is False
    assert len(_order("5500000004").lines) == 3
    assert _order("5500000004").customer.last_name == "Ann Jones"
    # Cancelled orders are stored but not announced as placed.
    assert len(signals.of("order_placed")) == 3
    assert len(signals.of("order_refunded")) == 1


def test_shopify_order_export_reimport_is_idempotent(signals):
    import_shopify_orders(DATA / "shopify_orders_export.csv")
    before = table_counts()
    sent = len(signals.calls)

    report = import_shopify_orders(DATA / "shopify_orders_export.csv")

    assert report.outcomes == {"unchanged": 4}
    assert table_counts() == before
    assert len(signals.calls) == sent


def test_shopify_export_refund_growth_records_only_the_difference(write_csv):
    header = "Name,Email,Total,Created at,Refunded Amount,Lineitem quantity,Lineitem name,Id"
    import_shopify_orders(
        write_csv(f"""
        {header}
        #1,a@example.com,50.00,2024-01-01 10:00:00 +0000,10.00,1,Thing,9001
    """)
    )
    import_shopify_orders(
        write_csv(f"""
        {header}
        #1,a@example.com,50.00,2024-01-01 10:00:00 +0000,25.00,1,Thing,9001
    """)
    )

    amounts = sorted(r.amount for r in db.session.scalars(select(Refund)))
    assert amounts == [Decimal("10.00"), Decimal("15.00")]


def test_shopify_export_without_id_is_matched_by_name_on_reimport(write_csv):
    path = write_csv("""
        Name,Email,Total,Created at,Lineitem quantity,Lineitem name
        #77,a@example.com,50.00,2024-01-01 10:00:00 +0000,1,Thing
    """)
    import_shopify_orders(path)
    report = import_shopify_orders(path)
    assert report.outcomes == {"unchanged": 1}
    assert table_counts()["order"] == 1


def test_shopify_export_order_fields_missing_on_first_row(write_csv):
    path = write_csv("""
        Name,Email,Total,Created at,Lineitem quantity,Lineitem name,Id
        #1,a@example.com,,2024-01-01 10:00:00 +0000,1,Thing,1
        #1,a@example.com,,,1,Other,
        #2,b@example.com,9.00,2024-01-01 10:00:00 +0000,1,Thing,2
    """)

    report = import_shopify_orders(path)

    assert report.failed_rows == 2
    [(row, message)] = report.errors
    assert row == 2 and "Total: missing" in message
    assert {o.external_id for o in db.session.scalars(select(Order))} == {"2"}


def test_shopify_export_requires_its_columns(write_csv):
    path = write_csv("""
        Name,Email,Total
        #1,a@example.com,1.00
    """)
    with pytest.raises(ImportAborted) as caught:
        import_shopify_orders(path)
    message = str(caught.value)
    assert '"Created at" or "Paid at"' in message and '"Lineitem quantity"' in message


# --- Shopify customer export ---------------------------------------------------------------


def test_shopify_customer_export_sample():
    report = import_shopify_customers(DATA / "shopify_customers_export.csv")

    assert report.ok, report.errors
    assert report.outcomes == {"created": 3}
    bob = _customer("bob.norman@example.com")
    assert bob.external_id == "7001000000001"  # the export's ' prefix is dropped
    assert bob.accepts_marketing is True
    assert bob.tags == ["wholesale", "vip"]
    assert bob.phone == "+44 20 7946 0001"  # Default Address Phone when Phone is blank
    alice = _customer("alice@example.com")
    assert (alice.accepts_marketing, alice.note, alice.phone) == (
        False,
        "Prefers email",
        "+44 7700 900002",
    )


def test_shopify_customer_export_matches_existing_and_is_idempotent():
    existing = CustomerFactory(email="carol@example.com", external_id=None, first_name="C")
    import_shopify_customers(DATA / "shopify_customers_export.csv")
    before = table_counts()

    report = import_shopify_customers(DATA / "shopify_customers_export.csv")

    assert report.outcomes == {"unchanged": 3}
    assert table_counts() == before
    carol = _customer("carol@example.com")
    assert (carol.id, carol.external_id, carol.first_name) == (
        existing.id,
        "7001000000003",
        "Carol",
    )


def test_shopify_customer_export_bad_rows(write_csv):
    path = write_csv("""
        Customer ID,First Name,Last Name,Email,Accepts Marketing
        1,Ann,A,ann@example.com,yes
        2,Ben,B,,no
        3,Cat,C,cat@example,maybe
        4,Dan,D,dan@example.com,no
    """)

    report = import_shopify_customers(path)

    assert report.failed_rows == 2
    rows = dict(report.errors)
    assert rows[3] == "row 3: Email: Missing data for required field."
    assert "Email: Not a valid email address." in rows[4]
    assert "Accepts Marketing: Not a valid boolean." in rows[4]  # named as in this file
    assert table_counts()["customer"] == 2


def test_customer_export_never_overwrites_newer_store_data(shopify):
    from tests.unit.customer_context.ingest.conftest import shopify_payload

    payload = shopify_payload("customer")
    payload["email"] = "bob.norman@example.com"
    payload["id"] = 7001000000001
    shopify.post("customers/create", payload)

    report = import_shopify_customers(DATA / "shopify_customers_export.csv")

    assert report.outcomes["stale"] == 1
    assert _customer("bob.norman@example.com").tags == []  # the webhook's (newer) data stays


# --- failures inside a batch ---------------------------------------------------------------


def test_a_failing_order_in_a_batch_rolls_back_alone(write_csv, signals):
    """A receiver failing on one order: the batch is replayed order by order; only that
    order (with the customer it created) is missing, the others are imported."""
    from helpdesk import events

    def refuse(sender, order, customer, **kwargs):
        if order.external_id == "O2":
            raise RuntimeError("handler refused O2")

    events.order_placed.connect(refuse)
    try:
        path = write_csv(f"""
            {HEADER}
            c1,a@example.com,O1,2024-01-01,10.00,A,1,x
            c2,b@example.com,O2,2024-01-02,20.00,A,1,x
            c2,b@example.com,O2,2024-01-02,20.00,B,1,x
            c3,c@example.com,O3,2024-01-03,30.00,A,1,x
        """)
        report = import_transactions(path, bulk=False)
    finally:
        events.order_placed.disconnect(refuse)

    assert report.outcomes == {"created": 2}
    [(row, message)] = report.errors
    assert row == 3 and "order #O2 (rows 3-4) not imported: RuntimeError: handler refused O2" in (
        message
    )
    assert report.failed_rows == 2
    assert {o.external_id for o in db.session.scalars(select(Order))} == {"O1", "O3"}
    assert {c.email for c in db.session.scalars(select(Customer))} == {
        "a@example.com",
        "c@example.com",
    }
    assert len(_order("O1").lines) == 1


def test_duplicate_order_id_under_two_names_fails_only_the_second(write_csv):
    path = write_csv("""
        Name,Email,Total,Created at,Lineitem quantity,Lineitem name,Id
        #1,a@example.com,10.00,2024-01-01 10:00:00 +0000,1,Thing,500
        #2,b@example.com,20.00,2024-01-02 10:00:00 +0000,1,Thing,500
        #3,c@example.com,30.00,2024-01-03 10:00:00 +0000,1,Thing,501
    """)

    report = import_shopify_orders(path, batch_size=10)

    assert report.outcomes == {"created": 2}
    [(row, message)] = report.errors
    assert row == 3 and "Id 500 is already the id of the order at row 2" in message
    assert _order("500").name == "#1"


def test_customer_export_listing_a_customer_twice_creates_then_updates(write_csv):
    path = write_csv("""
        Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Tags
        1,Ann,Old,ann@example.com,no,
        2,Ben,B,ben@example.com,yes,
        1,Ann,New,ANN@example.com,yes,vip
    """)

    report = import_shopify_customers(path, batch_size=10)

    assert report.outcomes == {"created": 2, "updated": 1}
    ann = _customer("ann@example.com")
    assert (ann.external_id, ann.last_name, ann.accepts_marketing, ann.tags) == (
        "1",
        "New",
        True,
        ["vip"],
    )
    assert table_counts()["customer"] == 2


def test_out_of_range_numbers_are_row_errors_not_database_errors(write_csv):
    path = write_csv(f"""
        {HEADER}
        c1,a@example.com,O1,2024-01-01,1E30,,,
        c2,b@example.com,O2,2024-01-02,10.00,SKU,99999999999,
        c3,c@example.com,O3,2024-01-03,10.00,SKU,2000000,
        c4,d@example.com,O4,2024-01-04,99999999.99,,,
    """)

    report = import_transactions(path)

    rows = dict(report.errors)
    assert "total: Amount out of range" in rows[2]
    assert "quantity: Must be less than or equal to 1000000." in rows[3]
    assert "quantity: Must be less than or equal to 1000000." in rows[4]
    assert _order("O4").total == Decimal("99999999.99")
