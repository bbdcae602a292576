"""Inbound email: the Mailgun-style webhook that turns customer emails into ticket messages.

`POST /webhooks/email/inbound` (form fields: sender, recipient, subject, body-plain,
body-html, Message-Id, In-Reply-To, References, timestamp, token, signature).

1. The signature is hex HMAC-SHA256(MAILGUN_SIGNING_KEY, timestamp + token), compared in
   constant time; a timestamp more than 15 minutes away from now is refused (replay window).
   Refusals answer 401 (bad signature) or 406 (stale; Mailgun does not retry a 406) and write
   nothing.
2. A token or Message-Id seen before is acknowledged (200) and ignored, and so is mail from
   the support address itself (a loop).
3. The sender ("Name <email>") is found or created as a customer.
4. Threading: a Message-Id in In-Reply-To/References that belongs to one of our messages,
   else a `[#123]` token in the subject when that ticket is the same customer's, else a new
   ticket. Replies reopen a solved ticket; a reply to a closed ticket opens a linked follow-up.
5. The HTML body is cut at the quoted history and sanitised with nh3; the plain-text body
   (body-plain, else text extracted from the HTML) is cut at the quoted history too.
   Attachments are not stored: their names are listed at the end of the text.
Everything is committed once, at the end.
"""

from __future__ import annotations

import html
import re
import time
from email.utils import parseaddr
from html.parser import HTMLParser

import nh3
from flask import Blueprint, current_app, jsonify, request

from helpdesk.auth.access import public
from helpdesk.extensions import csrf, db
from helpdesk.tickets.models import Ticket
from helpdesk.webhooks import already_received, verify_hex_hmac

bp = Blueprint("tickets_inbound", __name__)
csrf.exempt(bp)

MAX_SKEW_SECONDS = 15 * 60
MAX_TICKET_ID = 2**31 - 1
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")
_SUBJECT_TOKEN = re.compile(r"\[#(\d{1,12})\]")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,250}>")

# --- sanitising --------------------------------------------------------------------------------

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "div", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "abbr": {"title"},
}


def sanitise_html(raw: str) -> str:
    """Safe HTML: basic formatting, http(s)/mailto links with rel=noopener noreferrer, http(s)
    images; scripts, styles, event handlers and every other attribute removed."""
    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style", "title", "head", "template", "noscript"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


# --- quoted history ----------------------------------------------------------------------------

_ON_WROTE = re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE | re.DOTALL)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}", re.I)
_OUTLOOK_RULE = re.compile(r"^\s*_{8,}\s*$")
_HEADER_LINE = re.compile(r"^\s*\**(From|Sent|Date|To|Subject)\s*:\**\s", re.IGNORECASE)


def _history_starts(lines: list[str], i: int) -> bool:
    line = lines[i]
    if _ORIGINAL.match(line):
        return True
    following = lines[i + 1] if i + 1 < len(lines) else ""
    if _ON_WROTE.match(line) or (
        line.lstrip().lower().startswith("on ") and _ON_WROTE.match(f"{line} {following}")
    ):
        return True
    if _OUTLOOK_RULE.match(line) and _HEADER_LINE.match(following):
        return True
    # Outlook without a rule: "From: ..." then "Sent:"/"Date:" on the next line.
    return bool(
        re.match(r"^\s*\**From\s*:", line, re.I)
        and re.match(r"^\s*\**(Sent|Date)\s*:", following, re.I)
    )


def trim_quoted_text(text: str) -> str:
    """The new part of a plain-text reply: cut at the quoted history, drop `>` lines."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for i, line in enumerate(lines):
        if _history_starts(lines, i):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    trimmed = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return trimmed or (text or "").strip()


_QUOTE_IDS = ("divRplyFwdMsg", "appendonsend", "mail-editor-reference-message-container")


class _QuoteFinder(HTMLParser):
    """Finds where the quoted history of an HTML email starts (Gmail, Apple Mail, Outlook)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.position: tuple[int, int] | None = None

    def handle_starttag(self, tag, attrs):
        if self.position is not None:
            return
        values = {name: (value or "") for name, value in attrs}
        classes = values.get("class", "").split()
        if (
            "gmail_quote" in classes
            or "yahoo_quoted" in classes
            or (tag == "blockquote" and values.get("type", "").lower() == "cite")
            or values.get("id") in _QUOTE_IDS
        ):
            self.position = self.getpos()


def trim_quoted_html(raw: str) -> str:
    """The HTML before the quoted history (a marker element or an "Original Message" line)."""
    finder = _QuoteFinder()
    try:
        finder.feed(raw)
        finder.close()
    except Exception:  # noqa: BLE001 - malformed HTML: keep it whole, nh3 will clean it
        return raw
    cut = len(raw)
    if finder.position is not None:
        line, column = finder.position
        offsets = [0]
        for part in raw.splitlines(keepends=True):
            offsets.append(offsets[-1] + len(part))
        cut = offsets[line - 1] + column
    original = _ORIGINAL_IN_HTML.search(raw)
    if original and original.start() < cut:
        cut = original.start()
    trimmed = raw[:cut]
    return trimmed if html_to_text(trimmed) else raw


_ORIGINAL_IN_HTML = re.compile(r"-{2,}\s*(Original Message|Forwarded message)\s*-{2,}", re.I)


class _TextExtractor(HTMLParser):
    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote"}
    SKIP = {"script", "style", "head", "title", "template", "noscript"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def html_to_text(raw: str) -> str:
    """Readable plain text of an HTML body (scripts and styles dropped)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(raw or "")
        extractor.close()
    except Exception:  # noqa: BLE001 - fall back to stripping every tag
        return html.unescape(nh3.clean(raw or "", tags=set())).strip()
    lines = [" ".join(line.split()) for line in "".join(extractor.parts).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# --- parsing the form --------------------------------------------------------------------------


def parse_sender(value: str) -> tuple[str, str, str] | None:
    """("email", "first", "last") from 'Name <email>' or a bare address; None when invalid."""
    name, address = parseaddr(value or "")
    address = address.strip().lower()
    if not address or len(address) > 254 or not _EMAIL.match(address):
        return None
    name = " ".join(name.replace('"', "").split())
    if "@" in name:
        name = ""
    first, _, last = name.partition(" ")
    return address, first[:120], last[:120]


def message_ids(*values: str | None) -> list[str]:
    """Every `<id>` in the given header values, most recent reference first."""
    found: list[str] = []
    for value in values:
        for mid in reversed(_MESSAGE_ID.findall(value or "")):
            if mid not in found:
                found.append(mid)
    return found


def _validate(form) -> tuple[dict, dict[str, list[str]]]:
    errors: dict[str, list[str]] = {}
    sender_raw = (form.get("sender") or form.get("from") or "").strip()
    sender = parse_sender(sender_raw)
    if sender is None:
        # Mailgun's `sender` is the envelope address; `from` also carries the display name.
        sender = parse_sender(form.get("from") or "")
    if not sender_raw:
        errors["sender"] = ["The sender is required."]
    elif sender is None:
        errors["sender"] = [f"Not a valid email address: {sender_raw[:100]!r}."]
    if sender is not None and not sender[1]:
        display = parse_sender(form.get("from") or "")
        if display is not None and display[0] == sender[0]:
            sender = display
    plain = form.get("body-plain") or ""
    raw_html = form.get("body-html") or ""
    if not plain.strip() and not raw_html.strip():
        errors["body-plain"] = ["The email has no body (body-plain or body-html is required)."]
    message_id_raw = (form.get("Message-Id") or form.get("Message-ID") or "").strip()
    own_ids = message_ids(message_id_raw)
    data = {
        "sender": sender,
        "subject": form.get("subject") or form.get("Subject") or "",
        "plain": plain,
        "html": raw_html,
        "message_id": own_ids[0] if own_ids else (message_id_raw[:255] or None),
        "in_reply_to": (form.get("In-Reply-To") or "").strip() or None,
        "references": message_ids(form.get("In-Reply-To"), form.get("References")),
    }
    return data, errors


def attachment_names(req) -> list[str]:
    """File names of the email's attachments (Mailgun: attachment-1..N), at most 20."""
    names = [f.filename or "unnamed" for key, f in req.files.items(multi=True)]
    if not names:
        try:
            count = int(req.form.get("attachment-count") or 0)
        except ValueError:
            count = 0
        names = [f"attachment-{i}" for i in range(1, min(count, 20) + 1)]
    return [" ".join(name.split())[:100] for name in names[:20]]


def _signature_error():
    key = current_app.config.get("MAILGUN_SIGNING_KEY") or ""
    if not key:
        current_app.logger.error("inbound email refused: MAILGUN_SIGNING_KEY is not set")
        return jsonify({"error": "Inbound email is not configured."}), 503
    timestamp = (request.form.get("timestamp") or "").strip()
    token = (request.form.get("token") or "").strip()
    signature = request.form.get("signature")
    if not timestamp or not token or not signature:
        return jsonify({"error": "Missing signature (timestamp, token and signature)."}), 401
    if not verify_hex_hmac(key, (timestamp + token).encode(), signature):
        return jsonify({"error": "Invalid signature."}), 401
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return jsonify({"error": "The timestamp is not a Unix time."}), 401
    if age > MAX_SKEW_SECONDS:
        return jsonify({"error": "The signature timestamp is too old or in the future."}), 406
    return None


# --- the endpoint ------------------------------------------------------------------------------


def _thread_target(customer, subject: str, references: list[str]) -> Ticket | None:
    from helpdesk.tickets.queries import find_message_by_email_ids, get_ticket

    message = find_message_by_email_ids(references)
    if message is not None:
        ticket = db.session.get(Ticket, message.ticket_id)
        if ticket is not None and ticket.customer_id == customer.id:
            return ticket
    for match in _SUBJECT_TOKEN.finditer(subject or ""):
        if int(match.group(1)) > MAX_TICKET_ID:  # not one of ours (and past int4 on PostgreSQL)
            continue
        ticket = get_ticket(int(match.group(1)))
        if ticket is not None and ticket.customer_id == customer.id:
            return ticket
    return None


@bp.post("/webhooks/email/inbound")
@public("Mailgun inbound route; authenticated by the HMAC signature of timestamp + token")
def receive_email():
    """Verify, de-duplicate, thread or open, commit once (see the module docstring)."""
    from helpdesk.customer_context.services import find_or_create_customer
    from helpdesk.tickets.queries import find_message_by_email_ids
    from helpdesk.tickets.services import add_message, open_ticket

    refused = _signature_error()
    if refused is not None:
        db.session.rollback()
        return refused
    data, errors = _validate(request.form)
    if errors:
        db.session.rollback()
        return jsonify({"error": "The email could not be read.", "fields": errors}), 422
    if already_received("mailgun", request.form["token"].strip(), "inbound-email"):
        db.session.rollback()
        return jsonify({"status": "duplicate"}), 200
    if data["message_id"] and find_message_by_email_ids([data["message_id"]]) is not None:
        db.session.commit()  # keep the token: this delivery is known now
        return jsonify({"status": "duplicate"}), 200

    email, first, last = data["sender"]
    if email == (current_app.config.get("SUPPORT_EMAIL") or "").strip().lower():
        # Our own address (a bounce or a forwarding loop): never a customer message.
        db.session.commit()  # keep the token so a retry is recognised
        return jsonify({"status": "ignored", "reason": "sent from the support address"}), 200

    plain = trim_quoted_text(data["plain"]) if data["plain"].strip() else ""
    body_html = None
    if data["html"].strip():
        body_html = sanitise_html(trim_quoted_html(data["html"])) or None
        if not plain:
            plain = trim_quoted_text(html_to_text(data["html"]))
    if not plain:
        plain = "(This email had no readable text.)"
    skipped = attachment_names(request)
    if skipped:
        # Attachments are not stored; the agent must know they exist to ask for them.
        plain += f"\n\n[{len(skipped)} attachment(s) not imported: {', '.join(skipped)}]"

    customer = find_or_create_customer(email, first_name=first, last_name=last)
    ticket = _thread_target(customer, data["subject"], data["references"])
    if ticket is None:
        ticket = open_ticket(
            customer,
            data["subject"],
            plain,
            channel="email",
            body_html=body_html,
            message_id=data["message_id"],
            in_reply_to=data["in_reply_to"],
        )
        status, ticket_id, message_id = "opened", ticket.id, None
    else:
        message = add_message(
            ticket,
            plain,
            author_type="customer",
            body_html=body_html,
            message_id=data["message_id"],
            in_reply_to=data["in_reply_to"],
        )
        # message.ticket_id differs from ticket.id after a merge or for a closed ticket's follow-up
        status, ticket_id, message_id = "threaded", message.ticket_id, message.id
    db.session.commit()
    return jsonify({"status": status, "ticket_id": ticket_id, "message_id": message_id}), 200
