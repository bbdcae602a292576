"""The definitions of DESIGN §4 in one place: segments, F thresholds, tiers, CLV arithmetic.

Both the set-based recompute (SQL) and the incremental refresh (Python) are generated from or
call into this module, so the two can never drift apart. Money is handled in integer cents
inside the computation and rounded half-to-even to cents once, at the end.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from flask import current_app

from helpdesk.database import to_utc_naive, utcnow

EPOCH = dt.date(1970, 1, 1)
DAYS_PER_YEAR = 365
SCORES = (1, 2, 3, 4, 5)


# --- segments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    key: str
    label: str
    meaning: str


@dataclass(frozen=True)
class SegmentRule:
    """One row of the segment table: inclusive score ranges that must all hold."""

    segment: str
    r: tuple[int, int] = (1, 5)
    f: tuple[int, int] = (1, 5)
    m: tuple[int, int] = (1, 5)

    def matches(self, r: int, f: int, m: int) -> bool:
        return (
            self.r[0] <= r <= self.r[1]
            and self.f[0] <= f <= self.f[1]
            and self.m[0] <= m <= self.m[1]
        )


SEGMENTS: dict[str, Segment] = {
    s.key: s
    for s in (
        Segment("champions", "Champions", "Recent, frequent, big spenders: the best customers."),
        Segment("loyal", "Loyal", "Buy often and fairly recently: reward them, offer upgrades."),
        Segment(
            "potential_loyalist",
            "Potential loyalist",
            "Recent repeat buyers on their way to loyal: make the habit stick.",
        ),
        Segment("one_time", "One-time buyers", "Bought once, recently: win the second order."),
        Segment(
            "at_risk",
            "At risk",
            "Used to buy often or spend a lot, not lately: win them back before they go.",
        ),
        Segment(
            "needs_attention",
            "Needs attention",
            "Middling recency, not yet loyal: a nudge now keeps them from slipping.",
        ),
        Segment(
            "lapsed",
            "Lapsed",
            "Repeat buyers gone quiet for long: reactivate, or stop spending on them.",
        ),
        Segment("lost", "Lost", "One modest order long ago: low-cost win-back at most."),
    )
}

# THE segment table (docs/metrics.md shows the same). Ordered; the first matching rule wins;
# the last rule matches everything, so the segments partition the scored customers.
SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("champions", r=(4, 5), f=(4, 5), m=(4, 5)),
    SegmentRule("loyal", r=(3, 5), f=(4, 5)),
    SegmentRule("one_time", r=(4, 5), f=(1, 1)),
    SegmentRule("potential_loyalist", r=(4, 5), f=(2, 3)),
    SegmentRule("at_risk", r=(1, 2), f=(4, 5)),
    SegmentRule("at_risk", r=(1, 2), m=(4, 5)),
    SegmentRule("needs_attention", r=(3, 3)),
    SegmentRule("lapsed", r=(1, 2), f=(2, 5)),
    SegmentRule("lost"),  # what is left: r 1-2, f 1, m 1-3
)


def segment_for(r: int, f: int, m: int) -> str:
    """The segment key of a scored customer (first matching rule of SEGMENT_RULES)."""
    for rule in SEGMENT_RULES:
        if rule.matches(r, f, m):
            return rule.segment
    raise AssertionError("the last segment rule must match everything")  # pragma: no cover


def segment_case_sql(r: str = "r_score", f: str = "f_score", m: str = "m_score") -> str:
    """SEGMENT_RULES as a SQL CASE over the given score columns (literals are our own)."""
    whens = []
    for rule in SEGMENT_RULES[:-1]:
        terms = []
        for column, (lo, hi) in ((r, rule.r), (f, rule.f), (m, rule.m)):
            if (lo, hi) != (1, 5):
                terms.append(f"{column} BETWEEN {int(lo)} AND {int(hi)}")
        whens.append(f"WHEN {' AND '.join(terms)} THEN '{rule.segment}'")
    return f"CASE {' '.join(whens)} ELSE '{SEGMENT_RULES[-1].segment}' END"


def segment_info(key: str | None) -> Segment | None:
    """Label and one-line meaning of a segment key (None for unscored customers)."""
    return SEGMENTS.get(key) if key else None


# --- settings ---------------------------------------------------------------------------------


class MetricsConfigError(ValueError):
    """A metrics setting is unusable (reported by the CLI as a non-zero exit)."""


@dataclass(frozen=True)
class MetricsSettings:
    f_thresholds: tuple[int, int, int, int, int]
    lifespan: Fraction  # years, exact
    vip_min_orders: int
    vip_clv_top_percent: float
    regular_min_orders: int

    @property
    def vip_percentile_floor(self) -> float:
        """A CLV percentile strictly above this is in the VIP top share."""
        return 100.0 - self.vip_clv_top_percent


def metrics_settings(config=None) -> MetricsSettings:
    """Read and validate the DESIGN §4 settings from the app config."""
    config = config if config is not None else current_app.config
    thresholds = [int(t) for t in config.get("F_SCORE_THRESHOLDS", [1, 2, 3, 4, 6])]
    if len(thresholds) != 5 or thresholds[0] < 1:
        raise MetricsConfigError("F_SCORE_THRESHOLDS needs 5 order counts, the first at least 1")
    if any(b <= a for a, b in zip(thresholds, thresholds[1:], strict=False)):
        raise MetricsConfigError("F_SCORE_THRESHOLDS must be strictly increasing")
    lifespan = Fraction(str(config.get("CLV_LIFESPAN_YEARS", 3.0)))
    if lifespan <= 0:
        raise MetricsConfigError("CLV_LIFESPAN_YEARS must be positive")
    top = float(config.get("VIP_CLV_TOP_PERCENT", 5.0))
    if not 0 <= top <= 100:
        raise MetricsConfigError("VIP_CLV_TOP_PERCENT must be between 0 and 100")
    return MetricsSettings(
        f_thresholds=tuple(thresholds),  # type: ignore[arg-type]
        lifespan=lifespan,
        vip_min_orders=int(config.get("VIP_MIN_ORDERS", 10)),
        vip_clv_top_percent=top,
        regular_min_orders=int(config.get("REGULAR_MIN_ORDERS", 3)),
    )


# --- scores, CLV and tiers ------------------------------------------------------------------


def f_score(frequency: int, thresholds) -> int:
    """F by thresholds: the number of thresholds the order count reaches (at least 1)."""
    return max(1, sum(1 for t in thresholds if frequency >= t))


def f_case_sql(column: str, thresholds) -> str:
    """f_score() as SQL over `column` (thresholds are validated integers)."""
    whens = " ".join(
        f"WHEN {column} >= {int(t)} THEN {score}"
        for score, t in reversed(list(enumerate(thresholds, start=1)))
    )
    return f"CASE {whens} ELSE 1 END"


def rank_score(k: int, n: int) -> int:
    """ceil(5 × cume_dist) with cume_dist = k / n, exactly, in integers."""
    return (5 * k + n - 1) // n


def round_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to even (as Decimal does)."""
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    n, d = abs(numerator), abs(denominator)
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q % 2 == 1):
        q += 1
    return sign * q


def round_half_even_sql(numerator: str, denominator: str) -> str:
    """round_half_even() as SQL over integer expressions (denominator positive).

    Integer division truncates toward zero on both SQLite and PostgreSQL, so we divide the
    absolute value and put the sign back.
    """
    n = f"ABS({numerator})"
    q = f"({n} / ({denominator}))"
    r = f"({n} - {q} * ({denominator}))"
    rounded = (
        f"({q} + CASE WHEN 2 * {r} > ({denominator}) THEN 1 "
        f"WHEN 2 * {r} = ({denominator}) THEN {q} % 2 ELSE 0 END)"
    )
    return f"(CASE WHEN ({numerator}) < 0 THEN -1 ELSE 1 END * {rounded})"


def clv_terms(lifespan: Fraction) -> tuple[int, int]:
    """(multiplier, divisor) so that CLV cents = monetary cents × multiplier / (divisor × D).

    CLV = AOV × orders/year × lifespan = (M/F) × (F × 365 / D) × L = M × 365 × L / D with
    D = max(days from first order to as_of, 365). Kept as one exact fraction and rounded once.
    """
    return DAYS_PER_YEAR * lifespan.numerator, lifespan.denominator


def clv_cents(monetary_cents: int, age_days: int, lifespan: Fraction) -> int:
    """CLV in cents, rounded half-to-even once."""
    multiplier, divisor = clv_terms(lifespan)
    return round_half_even(monetary_cents * multiplier, divisor * max(age_days, DAYS_PER_YEAR))


def tier_for(orders: int, clv_percentile: float | None, settings: MetricsSettings) -> str:
    """new | regular | vip (DESIGN §4)."""
    if orders >= settings.vip_min_orders or (
        clv_percentile is not None and orders > 0 and clv_percentile > settings.vip_percentile_floor
    ):
        return "vip"
    if orders >= settings.regular_min_orders:
        return "regular"
    return "new"


def tier_case_sql(orders: str, percentile: str, settings: MetricsSettings) -> str:
    """tier_for() as SQL (numbers are validated settings)."""
    return (
        f"CASE WHEN {orders} >= {int(settings.vip_min_orders)} "
        f"OR {percentile} > {float(settings.vip_percentile_floor)!r} THEN 'vip' "
        f"WHEN {orders} >= {int(settings.regular_min_orders)} THEN 'regular' ELSE 'new' END"
    )


TIER_RANK = {"new": 0, "regular": 1, "vip": 2}


def is_upward(old: str | None, new: str) -> bool:
    """A move to a higher tier (a missing row counts as new)."""
    return TIER_RANK[new] > TIER_RANK[old or "new"]


def cents(value) -> int:
    """A money value (Decimal, float from SQLite, str) as integer cents."""
    return int((Decimal(str(value if value is not None else 0)) * 100).to_integral_value())


def from_cents(value: int) -> Decimal:
    """Integer cents as a Decimal with two places."""
    return (Decimal(int(value)) / 100).quantize(Decimal("0.01"))


# --- as_of ------------------------------------------------------------------------------------


def normalise_as_of(as_of: dt.datetime | dt.date | None) -> dt.datetime:
    """as_of as naive UTC; a date means that day (its orders count)."""
    if as_of is None:
        return utcnow()
    if isinstance(as_of, dt.datetime):
        return to_utc_naive(as_of)
    if isinstance(as_of, dt.date):
        return dt.datetime.combine(as_of, dt.time())
    raise TypeError(f"as_of must be a date or datetime, not {type(as_of).__name__}")


def day_number(moment: dt.datetime | dt.date) -> int:
    """Days since 1970-01-01 of the moment's calendar date (UTC)."""
    day = moment.date() if isinstance(moment, dt.datetime) else moment
    return (day - EPOCH).days


def order_cutoff(as_of: dt.datetime) -> dt.datetime:
    """Orders placed before this instant (the midnight after as_of's day) are counted."""
    return dt.datetime.combine(as_of.date() + dt.timedelta(days=1), dt.time())
