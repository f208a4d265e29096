"""A pipeline's DAG as an inline SVG (`%nbscale graph`): steps in layers top to bottom (a step one
layer below the deepest step it comes after), side by side within a layer in notebook order.

Labels are escaped (a step name is user text) and shortened to fit their box; the whole name is the
box's tooltip. Twenty steps stay readable: boxes keep their size and the picture grows.
"""

from __future__ import annotations

import html

BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 160, 30, 24, 46, 12
MAX_LABEL = 22
STATUS_FILL = {"succeeded": "#c8e6c9", "cached": "#b2dfdb", "failed": "#ffcdd2", "upstream_failed": "#f8bbd0",
               "cancelled": "#d7ccc8", "running": "#bbdefb"}


def layers(names: list[str], after: dict[str, list[str]]) -> dict[str, int]:
    """Each step's layer: 0 for a step that comes after none, else 1 + its deepest upstream's."""
    depth: dict[str, int] = {}

    def of(name, seen=()):
        if name not in depth:
            ups = [u for u in after.get(name, []) if u in after and u not in seen]
            depth[name] = 1 + max((of(u, (*seen, name)) for u in ups), default=-1)
        return depth[name]

    for name in names:
        of(name)
    return depth


def positions(names: list[str], after: dict[str, list[str]]) -> dict[str, tuple[float, float]]:
    """Top-left corner of each step's box."""
    depth = layers(names, after)
    rows: dict[int, list[str]] = {}
    for name in names:
        rows.setdefault(depth[name], []).append(name)
    widest = max((len(r) for r in rows.values()), default=1)
    places = {}
    for level, row in rows.items():
        offset = (widest - len(row)) * (BOX_W + GAP_X) / 2  # centre short rows
        for i, name in enumerate(row):
            places[name] = (MARGIN + offset + i * (BOX_W + GAP_X), MARGIN + level * (BOX_H + GAP_Y))
    return places


def short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def svg(names: list[str], after: dict[str, list[str]], statuses: dict[str, str] | None = None) -> str:
    statuses = statuses or {}
    places = positions(names, after)
    width = max((x for x, _ in places.values()), default=0) + BOX_W + MARGIN
    height = max((y for _, y in places.values()), default=0) + BOX_H + MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="nbscale-dag" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" font-size="12">',
             '<defs><marker id="nbscale-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#757575"/></marker></defs>']
    for name in names:
        x, y = places[name]
        for up in after.get(name, []):
            if up in places:
                ux, uy = places[up]
                parts.append(f'<line x1="{ux + BOX_W / 2:.0f}" y1="{uy + BOX_H:.0f}" x2="{x + BOX_W / 2:.0f}" '
                             f'y2="{y:.0f}" stroke="#757575" marker-end="url(#nbscale-arrow)"/>')
    for name in names:
        x, y = places[name]
        fill = STATUS_FILL.get(statuses.get(name, ""), "#f5f5f5")
        label = html.escape(name, quote=True)
        parts.append(f'<g class="nbscale-dag-step" data-step="{label}"><title>{label}</title>'
                     f'<rect x="{x:.0f}" y="{y:.0f}" width="{BOX_W}" height="{BOX_H}" rx="5" fill="{fill}" '
                     f'stroke="#424242"/><text x="{x + BOX_W / 2:.0f}" y="{y + BOX_H / 2 + 4:.0f}" '
                     f'text-anchor="middle">{html.escape(short(name))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def pipeline_svg(pipeline, statuses: dict[str, str] | None = None) -> str:
    return svg([s.name for s in pipeline.steps], {s.name: list(s.after) for s in pipeline.steps}, statuses)
