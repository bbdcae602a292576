"""The words the synthetic store is made of: names, catalogue, traffic sources, ticket texts.

Every email domain is a reserved example domain (RFC 2606 / 6761) and every phone number is
in Ofcom's drama range, so seeded data can never reach a real person even if a real ESP
backend is configured.
"""

from __future__ import annotations


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    """
    Olivia Amelia Isla Ava Mia Ivy Lily Isabella Rosie Sophia Grace Freya Willow Florence
    Emily Ella Poppy Evie Elsie Charlotte Aisha Priya Zara Fatima Maryam Chloe Hannah Sarah
    Niamh Siobhan Noah Oliver George Arthur Muhammad Leo Harry Oscar Archie Henry Theodore
    Freddie Jack Charlie Finley Thomas Alfie Jacob Ethan Lucas Samuel Daniel Joseph Rohan
    Arjun Kwame Tomasz Mateo Luca Ewan Callum Rhys Owen Dylan Cerys Megan Bethan Eilidh
    Catriona Marcus Andre Kofi Yusuf Ibrahim Hamza Nadia Leila Sana Anya Elena Sofia Camille
    Ines Julia Katarzyna Agnieszka Mei Hana Yuki
    """
)

LAST_NAMES = _words(
    """
    Smith Jones Taylor Brown Williams Wilson Johnson Davies Patel Robinson Wright Thompson
    Evans Walker White Roberts Green Hall Thomas Clarke Jackson Wood Harris Edwards Turner
    Martin Cooper Hill Ward Hughes Moore Clark King Harrison Lewis Baker Lee Allen Morris
    Khan Scott Watson Davis Parker James Bennett Young Phillips Richardson Mitchell Bailey
    Carter Cook Singh Shaw Bell Collins Morgan Kelly Begum Miller Cox Hussain Marshall
    Simpson Price Anderson Adams Wilkinson Ali Ahmed Foster Ellis Murphy Chapman Mason Gray
    Richards Webb Griffiths Hunt Palmer Campbell Holmes Mills Rogers Barnes Knight Matthews
    Barker Nowak Kowalski Okafor Mensah Chen Nguyen Rossi Garcia Fernandes Murray O'Brien
    """
)

EMAIL_DOMAINS = (
    ("example.com", 40),
    ("example.net", 25),
    ("example.org", 15),
    ("mail.example", 12),
    ("post.example", 8),
)
GUEST_EMAIL_DOMAIN = "guest.example"

# (source, medium, campaign, weight). Organic and direct carry no campaign.
TRAFFIC_SOURCES = (
    ("google", "cpc", "brand-search", 16),
    ("google", "cpc", "shopping-feed", 10),
    ("google", "organic", None, 18),
    ("facebook", "paid_social", "prospecting-broad", 11),
    ("facebook", "paid_social", "retargeting-30d", 5),
    ("instagram", "paid_social", "reels-creators", 8),
    ("instagram", "social", None, 5),
    ("tiktok", "paid_social", "ugc-spring", 4),
    ("newsletter", "email", "welcome-series", 7),
    ("newsletter", "email", "monthly-roast", 4),
    ("direct", "(none)", None, 9),
    ("bing", "cpc", "brand-search", 2),
    ("coffee-blog", "referral", "affiliate-reviews", 3),
)

CUSTOMER_TAGS = ("gift-buyer", "wholesale-enquiry", "press", "subscriber", "event-signup")

NOTES = (
    "Prefers deliveries to the side door.",
    "Asked not to be called before 10am.",
    "Runs a small office; often orders in bulk.",
    "Allergic to nuts: check blends before recommending.",
)

# category -> (kind, consumption_days, (min price, max price), title words, base names)
CATALOGUE = {
    "Coffee": (
        "consumable",
        28,
        (7.5, 16.0),
        (
            "Colombia Huila",
            "Ethiopia Yirgacheffe",
            "Brazil Cerrado",
            "Guatemala Antigua",
            "Kenya Nyeri",
            "House Espresso",
            "Decaf Swiss Water",
            "Sumatra Mandheling",
            "Rwanda Nyungwe",
            "Costa Rica Tarrazu",
            "Peru Cajamarca",
            "Honduras Marcala",
        ),
        ("Whole Bean 250g", "Ground 250g", "Whole Bean 1kg", "Espresso Roast 500g"),
    ),
    "Tea": (
        "consumable",
        40,
        (5.0, 12.0),
        (
            "Assam",
            "Darjeeling",
            "Earl Grey",
            "Sencha",
            "Rooibos",
            "Chamomile",
            "Oolong",
            "Lapsang Souchong",
        ),
        ("Loose Leaf 100g", "Pyramid Bags x20", "Loose Leaf 250g"),
    ),
    "Filters & Cleaning": (
        "consumable",
        60,
        (4.0, 15.0),
        ("V60", "Chemex", "Aeropress", "Espresso Machine", "Grinder", "Kettle"),
        ("Paper Filters x100", "Descaler 500ml", "Cleaning Tablets x30", "Brush Kit"),
    ),
    "Brewing Gear": (
        "standard",
        None,
        (15.0, 65.0),
        ("Ceramic", "Glass", "Copper", "Stainless", "Travel", "Cold Brew"),
        ("Pour-over Dripper", "Carafe 600ml", "French Press", "Milk Jug", "Scale", "Tamper"),
    ),
    "Mugs & Cups": (
        "standard",
        None,
        (8.0, 30.0),
        ("Stoneware", "Double-wall", "Enamel", "Handmade", "Speckled", "Glazed"),
        ("Mug 350ml", "Cup & Saucer", "Tumbler", "Espresso Cup Pair"),
    ),
    "Machines": (
        "technical",
        None,
        (120.0, 450.0),
        ("Conical", "Flat Burr", "Smart", "Compact", "Thermoblock", "Barista"),
        ("Grinder", "Espresso Machine", "Temperature Kettle", "Milk Frother"),
    ),
    "Pro Equipment": (
        "high_value",
        None,
        (900.0, 1900.0),
        ("Dual Boiler", "Lever", "Commercial", "Heat Exchanger"),
        ("Espresso Machine", "Grinder 83mm", "Roaster 1kg"),
    ),
    "Gifts": (
        "standard",
        None,
        (25.0, 70.0),
        ("Discovery", "Barista", "Tea Lover's", "Weekend", "Origins"),
        ("Gift Box", "Tasting Set", "Subscription Card 3 months"),
    ),
}
# Share of catalogue lines per category (high-value rare, coffee common).
CATEGORY_WEIGHTS = {
    "Coffee": 34,
    "Tea": 12,
    "Filters & Cleaning": 12,
    "Brewing Gear": 14,
    "Mugs & Cups": 11,
    "Machines": 7,
    "Pro Equipment": 2,
    "Gifts": 8,
}
VENDORS = ("Example Roasters", "Northern Kiln", "Hearth & Bean", "Brewhaus", "Leafline")

CARRIERS = (
    ("Royal Mail", "https://www.royalmail.com/track-your-item#/tracking-results/{}"),
    ("DPD", "https://track.dpd.co.uk/parcels/{}"),
    ("Evri", "https://www.evri.com/track/parcel/{}"),
    ("UPS", "https://www.ups.com/track?tracknum={}"),
)

DISCOUNT_CODES = (("WELCOME10", 0.10), ("SPRING15", 0.15), ("LOYAL20", 0.20))

REFUND_NOTES = (
    "Arrived damaged in transit",
    "Returned unused within 30 days",
    "Wrong item sent",
    "Goodwill for late delivery",
    "Item out of stock after ordering",
)

REVIEW_TEXTS = {
    5: (
        "Absolutely love it, will be ordering again.",
        "Fresh, well packed and arrived the next day.",
        "Best beans I've bought online. Lovely tasting notes.",
        "Great quality and the support team were brilliant.",
    ),
    4: (
        "Really good, delivery took a day longer than promised.",
        "Very happy overall. Packaging could be less bulky.",
        "Nice product, exactly as described.",
    ),
    3: (
        "It's fine. Expected a bit more for the price.",
        "Decent, but the grind was coarser than I wanted.",
    ),
    2: (
        "Box was crushed and one bag had split.",
        "Took over a week to arrive and nobody replied to my email.",
        "Not as described: much smaller than the photos suggest.",
    ),
    1: (
        "Arrived broken and I'm still waiting for a replacement.",
        "Wrong item, and the return label never came. Very disappointed.",
        "Stopped working after two weeks.",
    ),
}

# Ticket texts. Placeholders: {first}, {order}, {product}, {days}, {orders_count}.
TICKET_OPENERS = {
    "shipping": (
        (
            "Where is my order {order}?",
            "Hi, I ordered {product} {days} days ago (order {order}) and the tracking hasn't "
            "moved since. Can you tell me when it will arrive?",
        ),
        (
            "Order {order} not delivered yet",
            "Hello, my parcel was meant to come yesterday. The tracking says it's with the courier "
            "but nothing has turned up. Could you check please?",
        ),
        (
            "Tracking link not working",
            "The tracking link in my shipping email for {order} gives an error. Is the parcel on "
            "its way?",
        ),
    ),
    "refund": (
        (
            "Refund request for {order}",
            "Hi, I'd like a refund for {product} from order {order}. It isn't what I expected "
            "and I'd rather have my money back.",
        ),
        (
            "Still waiting for my refund",
            "I sent {product} back over a week ago and haven't seen the refund for {order} yet. "
            "Can you confirm when it will go through?",
        ),
        (
            "Charged twice?",
            "My bank shows two payments for order {order}. Please refund the duplicate.",
        ),
    ),
    "return": (
        (
            "Return for {order}",
            "Hello, I'd like to return {product}. It's unopened. How do I get a return label?",
        ),
        (
            "Wrong size / wrong item",
            "I received the wrong item in {order}: I ordered {product} but got something else. "
            "How do I swap it?",
        ),
    ),
    "complaint": (
        (
            "Really disappointed with order {order}",
            "I've ordered from you {orders_count} times and this is the first time I'm this "
            "unhappy. {product} arrived damaged and the box was crushed. I expected better.",
        ),
        (
            "Damaged item and no reply",
            "{product} arrived broken. I emailed two days ago and got no answer. This is not the "
            "service I'm used to from you.",
        ),
        (
            "Product stopped working",
            "{product} stopped working after a couple of weeks. I'm very disappointed given the "
            "price.",
        ),
        (
            "Rude courier and late delivery",
            "Order {order} was four days late and the courier was rude when he finally came. "
            "Not happy at all.",
        ),
    ),
    "question": (
        (
            "Which grind for an Aeropress?",
            "Hi! Which of your coffees would you recommend for an Aeropress, and should I get it "
            "ground or whole bean?",
        ),
        (
            "Loyalty points balance",
            "How many loyalty points do I have, and how do I use them at checkout?",
        ),
        (
            "Do you deliver to Ireland?",
            "Hello, do you ship to the Republic of Ireland and how long does it take?",
        ),
        (
            "Is {product} in stock again soon?",
            "I'd love to order {product} but it says out of stock. Any idea when it's back?",
        ),
    ),
    "other": (
        (
            "Change of address",
            "I've moved house. Please update my delivery address before my next order.",
        ),
        ("Wholesale enquiry", "We run a small cafe and would like to know about wholesale prices."),
        ("Unsubscribe me from texts", "Please stop sending me text messages, email is fine."),
    ),
}

TICKET_FOLLOW_UPS = (
    "Any update on this please?",
    "Just checking in again, I haven't heard back.",
    "Thanks, that helps. One more question: can I change the delivery day?",
    "I've attached a photo of the damage.",
)

CUSTOMER_THANKS = (
    "Brilliant, thank you so much!",
    "Great, that's sorted. Thanks for the quick help.",
    "Received it today. Thanks!",
)

AGENT_REPLIES = {
    "shipping": (
        "Hi {first},\n\nThanks for your patience. Order {order} is with the courier and should "
        "arrive within two working days. You can follow it here: {tracking}\n\nBest,\n{agent}"
    ),
    "refund": (
        "Hi {first},\n\nI've checked order {order} and I'm processing your refund now. It "
        "usually shows on your statement within 3-5 working days.\n\nBest,\n{agent}"
    ),
    "return": (
        "Hi {first},\n\nSorry about that! I've emailed you a prepaid return label for {order}. "
        "Once it's back with us we'll send the replacement straight away.\n\nBest,\n{agent}"
    ),
    "complaint": (
        "Hi {first},\n\nI'm really sorry about this. That isn't the experience we want for you. "
        "I've arranged a replacement for {product} on next-day delivery and added some points "
        "to your account as an apology.\n\nBest,\n{agent}"
    ),
    "question": (
        "Hi {first},\n\nGreat question! I'd recommend a medium roast, ground for filter. Let me "
        "know if there's anything else I can help with.\n\nBest,\n{agent}"
    ),
    "other": (
        "Hi {first},\n\nThanks for letting us know, that's done for you now.\n\nBest,\n{agent}"
    ),
}

AGENT_ASKS = (
    "Hi {first},\n\nSorry to hear that. Could you send a photo of the item and the packaging so "
    "I can raise it with the courier?\n\nBest,\n{agent}",
    "Hi {first},\n\nCould you confirm the delivery address on the order? I'll chase it as soon "
    "as I hear back.\n\nBest,\n{agent}",
)

INTERNAL_NOTES = (
    "Checked with the warehouse: parcel left us on time, courier delay.",
    "Long-standing customer, be generous here.",
    "Second contact about the same order. Watch for a refund request.",
    "Courier claim raised, ref to follow.",
    "Replacement approved by the lead.",
)

TICKET_TAGS = {
    "shipping": ("wismo", "late-delivery", "courier"),
    "refund": ("refund-request", "duplicate-charge"),
    "return": ("return", "wrong-item"),
    "complaint": ("damaged", "quality", "courier"),
    "question": ("pre-sale", "product-question", "loyalty"),
    "other": ("account", "wholesale"),
}

STAFF = (
    # (name, email local part, role): the seeded support team besides any demo logins.
    ("Maya Okafor", "maya.okafor", "agent"),
    ("Tom Reilly", "tom.reilly", "agent"),
    ("Priya Shah", "priya.shah", "agent"),
    ("Dan Fletcher", "dan.fletcher", "lead"),
)
STAFF_DOMAIN = "staff.example.com"

MACROS = (
    (
        "Where is my order",
        "shipping",
        "Hi {{customer.first_name}},\n\nThanks for getting in touch. Your order {{order.name}} "
        "is on its way. You can follow it here: {{order.tracking_url}}\n\nIf it hasn't "
        "arrived in two working days, reply to this email and I'll chase the courier for you."
        "\n\nBest wishes,\n{{agent.first_name}}",
    ),
    (
        "Refund confirmed",
        "refund",
        "Hi {{customer.first_name}},\n\nI've processed the refund for {{order.name}}. It "
        "usually shows on your statement within 3-5 working days."
        "\n\nBest wishes,\n{{agent.first_name}}",
    ),
    (
        "Return instructions",
        "return",
        "Hi {{customer.first_name}},\n\nNo problem at all. I've sent a prepaid return label to "
        "this address. Pop the item in its original packaging, and once it's back with us "
        "we'll refund or replace it, whichever you prefer."
        "\n\nBest wishes,\n{{agent.first_name}}",
    ),
    (
        "Damaged item: replacement on its way",
        "complaint",
        "Hi {{customer.first_name}},\n\nI'm so sorry {{order.name}} arrived damaged. I've sent "
        "a replacement on next-day delivery, and there's no need to return the damaged one."
        "\n\nBest wishes,\n{{agent.first_name}}",
    ),
    (
        "Loyalty points balance",
        "question",
        "Hi {{customer.first_name}},\n\nYou currently have {{loyalty.points}} loyalty points. "
        "Every 100 points is worth £1 off, and you can apply them at checkout when you're "
        "logged in."
        "\n\nBest wishes,\n{{agent.first_name}}",
    ),
    (
        "Apology for the delay",
        "complaint",
        "Hi {{customer.first_name}},\n\nI'm sorry we've let you down on {{order.name}}. That's "
        "not the standard we hold ourselves to. I've looked into it and here is what happened, "
        "and what I've done to put it right:\n\n"
        "\n\nBest wishes,\n{{agent.first_name}}",
    ),
    (
        "Closing: no reply",
        None,
        "Hi {{customer.first_name}},\n\nI haven't heard back, so I'll close this conversation "
        "for now. Just reply to this email if you still need help and it will reopen."
        "\n\nBest wishes,\n{{agent.first_name}}",
    ),
)
