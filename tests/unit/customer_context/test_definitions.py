"""The DESIGN §4 definitions on their own: segment table, F thresholds, ranks, CLV, tiers."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest

from helpdesk.customer_context.metrics import definitions as d

ALL_SCORES = list(itertools.product(d.SCORES, d.SCORES, d.SCORES))


def test_segment_table_partitions_every_score_combination():
    seen = {d.segment_for(r, f, m) for r, f, m in ALL_SCORES}
    # every combination lands in a known segment, and every segment is reachable
    assert seen == set(d.SEGMENTS)
    assert d.SEGMENT_RULES[-1].r == d.SEGMENT_RULES[-1].f == d.SEGMENT_RULES[-1].m == (1, 5)


@pytest.mark.parametrize(
    ("r", "f", "m", "segment"),
    [
        (5, 5, 5, "champions"),
        (4, 4, 4, "champions"),
        (4, 5, 2, "loyal"),
        (3, 4, 5, "loyal"),
        (5, 1, 5, "one_time"),
        (4, 1, 1, "one_time"),
        (5, 2, 3, "potential_loyalist"),
        (2, 5, 1, "at_risk"),
        (1, 1, 5, "at_risk"),
        (3, 1, 1, "needs_attention"),
        (3, 3, 5, "needs_attention"),
        (1, 3, 2, "lapsed"),
        (2, 2, 3, "lapsed"),
        (1, 1, 1, "lost"),
        (2, 1, 3, "lost"),
    ],
)
def test_segment_rules(r, f, m, segment):
    assert d.segment_for(r, f, m) == segment


def test_lost_is_exactly_low_on_everything():
    lost = {(r, f, m) for r, f, m in ALL_SCORES if d.segment_for(r, f, m) == "lost"}
    assert lost == {(r, 1, m) for r in (1, 2) for m in (1, 2, 3)}


def test_segment_sql_matches_python():
    from sqlalchemy import text

    from helpdesk.extensions import db

    values = " UNION ALL ".join(f"SELECT {r} AS r, {f} AS f, {m} AS m" for r, f, m in ALL_SCORES)
    rows = db.session.execute(
        text(f"SELECT r, f, m, {d.segment_case_sql('r', 'f', 'm')} FROM ({values}) t")
    ).all()
    assert len(rows) == 125
    for r, f, m, segment in rows:
        assert segment == d.segment_for(r, f, m), (r, f, m)


def test_every_segment_has_label_and_meaning():
    for key, segment in d.SEGMENTS.items():
        assert segment.key == key and segment.label and segment.meaning.endswith(".")
    assert d.segment_info(None) is None
    assert d.segment_info("champions").label == "Champions"


@pytest.mark.parametrize(
    ("orders", "score"), [(1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 5), (40, 5)]
)
def test_f_score_default_thresholds(orders, score):
    assert d.f_score(orders, (1, 2, 3, 4, 6)) == score


def test_f_score_custom_thresholds():
    assert [d.f_score(n, (1, 3, 5, 8, 12)) for n in (1, 2, 3, 7, 8, 12)] == [1, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    "thresholds", [[1, 2, 3, 4], [0, 1, 2, 3, 4], [1, 2, 2, 3, 4], [1, 3, 2, 4, 5]]
)
def test_bad_f_thresholds_are_refused(thresholds):
    with pytest.raises(d.MetricsConfigError):
        d.metrics_settings({"F_SCORE_THRESHOLDS": thresholds})


def test_rank_score_is_ceil_of_five_cume_dist():
    # n = 10: k 1..10 -> cume_dist .1 .. 1.0 -> ceil(5x)
    assert [d.rank_score(k, 10) for k in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert d.rank_score(1, 1) == 5  # a lone customer is the top
    assert [d.rank_score(k, 3) for k in (1, 2, 3)] == [2, 4, 5]


def test_round_half_even():
    assert d.round_half_even(5, 2) == 2  # 2.5 -> 2
    assert d.round_half_even(7, 2) == 4  # 3.5 -> 4
    assert d.round_half_even(-5, 2) == -2
    assert d.round_half_even(10, 3) == 3
    assert d.round_half_even(11, 3) == 4  # 3.67


def test_clv_playbook_example():
    # AOV 85 × 4 orders a year × 3 years = 1,020: 4 orders of 85 within the first year.
    assert d.clv_cents(4 * 8500, age_days=300, lifespan=Fraction(3)) == 102000
    # Older customers: orders per year = F × 365 / days. 8 orders of 85 over 730 days.
    assert d.clv_cents(8 * 8500, age_days=730, lifespan=Fraction(3)) == 102000
    # A lifespan of 2.5 years is exact too.
    assert d.clv_cents(8500, age_days=10, lifespan=Fraction("2.5")) == 21250


def test_tier_rule():
    s = d.metrics_settings({})
    assert d.tier_for(10, 10.0, s) == "vip"
    assert d.tier_for(1, 95.1, s) == "vip"
    assert d.tier_for(1, 95.0, s) == "new"  # top 5% means strictly above the 95th percentile
    assert d.tier_for(3, 50.0, s) == "regular"
    assert d.tier_for(2, 50.0, s) == "new"
    assert d.tier_for(0, None, s) == "new"
    assert d.is_upward("new", "regular") and d.is_upward(None, "vip")
    assert not d.is_upward("vip", "regular")
