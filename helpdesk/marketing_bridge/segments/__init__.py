"""Dynamic segments: definition language (`schema`), SQL compiler, materialised membership.

Built-in segments (`defaults`): one per RFM segment and the playbook's examples. The
`marketing.segments_refresh` job refreshes them all; an order or a metrics change updates
that customer's memberships at once, with one statement evaluating every segment.
"""

from helpdesk.marketing_bridge.segments.compiler import compile_definition
from helpdesk.marketing_bridge.segments.defaults import ensure_default_segments
from helpdesk.marketing_bridge.segments.membership import (
    current_segment_ids,
    refresh_all,
    refresh_customer,
    refresh_customers,
    refresh_segment,
)
from helpdesk.marketing_bridge.segments.schema import DefinitionError, validate_definition

__all__ = [
    "DefinitionError",
    "compile_definition",
    "current_segment_ids",
    "ensure_default_segments",
    "refresh_all",
    "refresh_customer",
    "refresh_customers",
    "refresh_segment",
    "validate_definition",
]
