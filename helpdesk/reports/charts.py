"""Server-rendered SVG charts: bars, grouped bars and lines. No JavaScript, no CDN, no inline
style (the CSP forbids it): shapes carry classes styled in static/css/reports.css.
Every label is escaped; values are numbers."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 240
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 48, 36, 12, 46
SERIES_CLASSES = ("s1", "s2", "s3", "s4", "s5", "s6", "s7")


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}"


def _scale(max_value: float) -> float:
    return max_value if max_value > 0 else 1.0


def _axes(max_value: float, title: str) -> list[str]:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [f"<title>{escape(title)}</title>"]
    for i in range(5):
        value = max_value * i / 4
        y = PAD_TOP + plot_h - plot_h * i / 4
        parts.append(
            f'<line class="grid" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH - PAD_RIGHT}" '
            f'y2="{y:.1f}"/><text class="tick" x="{PAD_LEFT - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{_fmt(value)}</text>'
        )
    return parts


def _wrap(parts: list[str], title: str, legend: Sequence[str] = ()) -> Markup:
    legend_items = "".join(
        f'<span class="legend-item"><span class="swatch {SERIES_CLASSES[i % 7]}"></span>'
        f"{escape(name)}</span>"
        for i, name in enumerate(legend)
    )
    svg = (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" preserveAspectRatio="xMidYMid meet">'
        + "".join(parts)
        + "</svg>"
    )
    # Safe: every label interpolated above went through escape(); the rest are numbers.
    return Markup(svg + (f'<div class="legend">{legend_items}</div>' if legend else ""))  # noqa: S704


def bar_chart(data: Sequence[tuple[str, float]], title: str) -> Markup:
    """Vertical bars, one per (label, value)."""
    return grouped_bar_chart([label for label, _ in data], {"": [v for _, v in data]}, title)


def grouped_bar_chart(
    labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str
) -> Markup:
    """Bars grouped by label, one bar per series."""
    values = [float(v or 0) for vs in series.values() for v in vs]
    top = _scale(max(values, default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = _axes(top, title)
    n_groups = max(len(labels), 1)
    group_w = plot_w / n_groups
    n_series = max(len(series), 1)
    bar_w = max(group_w * 0.8 / n_series, 1)
    for gi, label in enumerate(labels):
        x0 = PAD_LEFT + gi * group_w + group_w * 0.1
        for si, (name, vs) in enumerate(series.items()):
            value = float(vs[gi] or 0) if gi < len(vs) else 0.0
            h = plot_h * value / top
            x = x0 + si * bar_w
            y = PAD_TOP + plot_h - h
            tip = f"{name + ' · ' if name else ''}{label}: {_fmt(value)}"
            parts.append(
                f'<rect class="bar {SERIES_CLASSES[si % 7]}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar_w:.1f}" height="{h:.1f}"><title>{escape(tip)}</title></rect>'
            )
        if n_groups <= 16 or gi % max(n_groups // 12, 1) == 0:
            cx = PAD_LEFT + gi * group_w + group_w / 2
            parts.append(
                f'<text class="label" x="{cx:.1f}" y="{HEIGHT - PAD_BOTTOM + 14}" '
                f'text-anchor="middle">{escape(str(label)[:14])}</text>'
            )
    legend = [name for name in series if name]
    return _wrap(parts, title, legend)


def line_chart(
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    title: str,
    max_value: float | None = None,
) -> Markup:
    """One line per series over shared x labels. A None value (not measurable yet, such as an
    immature cohort) breaks the line instead of being drawn as zero."""
    values = [float(v) for vs in series.values() for v in vs if v is not None]
    top = _scale(max_value if max_value is not None else max(values, default=0))
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = _axes(top, title)
    n = max(len(labels), 1)
    step = plot_w / max(n - 1, 1)
    for si, (name, vs) in enumerate(series.items()):
        runs: list[list[str]] = [[]]
        for i, v in enumerate(vs):
            if v is None:
                runs.append([])
                continue
            x = PAD_LEFT + i * step
            y = PAD_TOP + plot_h - plot_h * float(v) / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle class="dot {SERIES_CLASSES[si % 7]}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(f'{name} · {labels[i]}: {_fmt(float(v))}')}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline class="line {SERIES_CLASSES[si % 7]}" points="{" ".join(run)}"/>'
                )
    for i, label in enumerate(labels):
        if n <= 16 or i % max(n // 12, 1) == 0:
            parts.append(
                f'<text class="label" x="{PAD_LEFT + i * step:.1f}" '
                f'y="{HEIGHT - PAD_BOTTOM + 14}" text-anchor="middle">'
                f"{escape(str(label)[:10])}</text>"
            )
    return _wrap(parts, title, list(series))
