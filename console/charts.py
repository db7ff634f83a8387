"""Server-rendered SVG charts (pure, no ORM): a dispatch's settlement periods.

Power is kW with the settlement sign convention (positive = import from the network).
The chart draws the baseline, the ordered target (baseline moved by the ordered kW in
the order's direction), the actual metered power, and the delivered flexibility as bars.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

from console.templatetags.console import utc

WIDTH, HEIGHT = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 70
SERIES = (  # key, label, colour, dash pattern
    ("baseline", "Baseline", "#1f4e9c", ""),
    ("target", "Ordered target", "#a15c00", "6 4"),
    ("actual", "Actual", "#1b6e3a", ""),
)
DELIVERED_COLOUR = "#8d8d8d"


def _number(text: str | None) -> float | None:
    return None if text in (None, "") else float(Decimal(text))


def target_kw(line: dict) -> float | None:
    """The power level the order asked for: baseline less the ordered kW for a DOWN order
    (less import), plus it for an UP order (less export)."""
    baseline, ordered = _number(line.get("baselineKw")), _number(line.get("orderedKw"))
    if baseline is None or ordered is None:
        return None
    return baseline + ordered if line.get("direction") == "up" else baseline - ordered


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high == low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** len(str(int(abs(raw)))) / 10 if raw >= 1 else 0.1
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = (low // step) * step
    ticks, value = [], first
    while value <= high + step / 2:
        ticks.append(round(value, 6))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:g}"


def dispatch_chart(reference: str, lines: list[dict]) -> str:
    """An accessible SVG (role img, <title>, <desc>) of one dispatch's utilisation lines,
    one point per settlement period, in period order."""
    points = [{"start": line["periodStart"], "baseline": _number(line.get("baselineKw")),
               "target": target_kw(line), "actual": _number(line.get("actualKw")),
               "delivered": _number(line.get("deliveredKw"))} for line in lines]
    values = [p[k] for p in points for k in ("baseline", "target", "actual", "delivered")
              if p[k] is not None] + [0.0]
    ticks = _ticks(min(values), max(values))
    low, high = ticks[0], ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(points), 1)

    def x(index: int) -> float:
        return LEFT + slot * (index + 0.5)

    def y(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    title = f"Dispatch {reference}: power per settlement period"
    summary = "; ".join(
        f"{utc(p['start'])}: baseline {_label(p['baseline']) if p['baseline'] is not None else '?'}"
        f" kW, target {_label(p['target']) if p['target'] is not None else '?'} kW, actual "
        f"{_label(p['actual']) if p['actual'] is not None else '?'} kW, delivered "
        f"{_label(p['delivered']) if p['delivered'] is not None else '?'} kW"
        for p in points)
    ident = "chart-" + "".join(c if c.isalnum() else "-" for c in reference)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
           f'class="chart" role="img" aria-labelledby="{ident}-title {ident}-desc">',
           f'<title id="{ident}-title">{escape(title)}</title>',
           f'<desc id="{ident}-desc">{escape(summary)}</desc>']
    for tick in ticks:  # horizontal grid and y labels
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" '
                   f'y2="{y(tick):.1f}" class="grid"/>')
        out.append(f'<text x="{LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">'
                   f'{_label(tick)}</text>')
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(0):.1f}" y2="{y(0):.1f}" '
               'class="axis"/>')
    out.append(f'<text transform="translate(16 {TOP + plot_h / 2:.0f}) rotate(-90)" '
               'text-anchor="middle">Power (kW, + import)</text>')
    bar = slot * 0.5
    for index, point in enumerate(points):
        if point["delivered"] is not None:
            top, bottom = sorted((y(point["delivered"]), y(0)))
            out.append(f'<rect x="{x(index) - bar / 2:.1f}" y="{top:.1f}" width="{bar:.1f}" '
                       f'height="{max(bottom - top, 0.5):.1f}" fill="{DELIVERED_COLOUR}" '
                       'opacity="0.6"/>')
        label = point["start"][11:16]
        out.append(f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 16}" '
                   f'text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - BOTTOM + 34}" '
               'text-anchor="middle">Settlement period start (UTC)</text>')
    for key, _, colour, dash in SERIES:
        coordinates = [(x(i), y(p[key])) for i, p in enumerate(points) if p[key] is not None]
        if not coordinates:
            continue
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in coordinates)
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                   f'stroke-width="2.5"{dashes}/>')
        for a, b in coordinates:
            out.append(f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{colour}"/>')
    legend_y = HEIGHT - 16
    cursor = LEFT
    for _, label, colour, dash in SERIES:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{cursor}" x2="{cursor + 24}" y1="{legend_y - 4}" '
                   f'y2="{legend_y - 4}" stroke="{colour}" stroke-width="2.5"{dashes}/>')
        out.append(f'<text x="{cursor + 30}" y="{legend_y}">{label}</text>')
        cursor += 40 + 8 * len(label)
    out.append(f'<rect x="{cursor}" y="{legend_y - 10}" width="18" height="12" '
               f'fill="{DELIVERED_COLOUR}" opacity="0.6"/>')
    out.append(f'<text x="{cursor + 24}" y="{legend_y}">Delivered (kW of flexibility)</text>')
    out.append("</svg>")
    return "\n".join(out)
