"""Campaign messages are checked like template edits (one checker for both)."""

from __future__ import annotations

import pytest

from helpdesk.marketing_bridge.campaigns import CampaignError, CampaignInput, create_campaign
from helpdesk.marketing_bridge.templates_store import ensure_default_templates
from tests.factories.marketing_bridge import SegmentFactory


@pytest.fixture
def segment():
    ensure_default_templates()
    return SegmentFactory()


def _campaign(segment, subject="Spring sale", body="Hi {{customer.first_name}}, 10% off."):
    return CampaignInput(name="Spring", segment_id=segment.id, subject=subject, body=body)


def test_valid_campaign_is_saved_normalised(segment):
    campaign = create_campaign(_campaign(segment, subject="  Spring   sale "))
    assert campaign.subject == "Spring sale"


@pytest.mark.parametrize(
    ("subject", "body", "field", "message"),
    [
        ("", "Hello", "subject", "A subject is required."),
        ("Hi", "", "body", "The message body is required."),
        ("Hi", "Hello {{customer.first_name", "body", "is not closed"),
        ("Hi {{nope}}", "Hello", "subject", "Unknown variable {{nope}}"),
        ("Hi", "x" * 20_001, "body", "over 20,000 characters"),
    ],
)
def test_invalid_campaign_message_is_refused(segment, subject, body, field, message):
    with pytest.raises(CampaignError) as refused:
        create_campaign(_campaign(segment, subject, body))
    assert message in refused.value.errors[field]
