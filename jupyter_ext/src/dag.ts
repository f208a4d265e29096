/**
 * Renders a laid-out DAG as SVG: one box per step (coloured stripe = the step's badge colour,
 * fill = its status in the shown run), arrows for data and ordering edges.
 */
import { stepColour } from './colours';
import { s } from './dom';
import { statusLabel } from './format';
import { IDagLayout } from './layout';

export interface IDagRenderOptions {
  statuses?: Record<string, string>;
  selected?: string | null;
  onSelect?: (step: string) => void;
  /** Unique per panel so marker ids do not clash between documents. */
  idPrefix?: string;
}

function pathOf(points: { x: number; y: number }[]): string {
  if (!points.length) {
    return '';
  }
  const [first, ...rest] = points;
  if (rest.length === 1) {
    return `M${first.x},${first.y} L${rest[0].x},${rest[0].y}`;
  }
  // a smooth curve through dagre's control points
  let d = `M${first.x},${first.y}`;
  for (let i = 0; i < rest.length - 1; i++) {
    const c = rest[i];
    const n = rest[i + 1];
    const mx = (c.x + n.x) / 2;
    const my = (c.y + n.y) / 2;
    d += ` Q${c.x},${c.y} ${i === rest.length - 2 ? `${n.x},${n.y}` : `${mx},${my}`}`;
  }
  return d;
}

export function renderDag(layout: IDagLayout, options: IDagRenderOptions = {}): SVGSVGElement {
  const statuses = options.statuses ?? {};
  const markerId = `${options.idPrefix ?? 'nbscale'}-arrow`;
  const svg = s('svg', {
    className: 'nbscale-dag',
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    width: layout.width,
    height: layout.height,
    role: 'img',
    'aria-label': `Pipeline with ${layout.nodes.length} steps`,
    'data-steps': layout.nodes.length
  });
  svg.style.maxWidth = '100%';
  svg.style.height = 'auto';
  const defs = s(
    'defs',
    {},
    s(
      'marker',
      {
        id: markerId,
        viewBox: '0 0 10 10',
        refX: 9,
        refY: 5,
        markerWidth: 7,
        markerHeight: 7,
        orient: 'auto-start-reverse'
      },
      s('path', { d: 'M0,0 L10,5 L0,10 z', className: 'nbscale-dag-arrowhead' })
    )
  );
  svg.appendChild(defs);

  const edges = s('g', { className: 'nbscale-dag-edges' });
  for (const e of layout.edges) {
    const title = e.names.length ? `${e.from} → ${e.to}: ${e.names.join(', ')}` : `${e.from} → ${e.to} (order)`;
    edges.appendChild(
      s(
        'path',
        {
          className: `nbscale-dag-edge${e.names.length ? '' : ' nbscale-dag-edge-order'}`,
          d: pathOf(e.points),
          'marker-end': `url(#${markerId})`,
          'data-from': e.from,
          'data-to': e.to
        },
        s('title', {}, title)
      )
    );
  }
  svg.appendChild(edges);

  const nodes = s('g', { className: 'nbscale-dag-nodes' });
  const order = layout.nodes.map(n => n.name);
  for (const n of layout.nodes) {
    const status = statuses[n.name] ?? 'none';
    const left = n.x - n.width / 2;
    const top = n.y - n.height / 2;
    const g = s('g', {
      className: `nbscale-dag-node nbscale-status-${status}${options.selected === n.name ? ' nbscale-selected' : ''}`,
      'data-step': n.name,
      'data-status': status,
      tabindex: 0,
      role: 'button',
      'aria-label': `step ${n.name}${status !== 'none' ? `, ${statusLabel(status)}` : ''}`
    });
    g.appendChild(s('title', {}, status === 'none' ? n.name : `${n.name}: ${statusLabel(status)}`));
    g.appendChild(
      s('rect', { className: 'nbscale-dag-box', x: left, y: top, width: n.width, height: n.height, rx: 5, ry: 5 })
    );
    const stripe = s('rect', { className: 'nbscale-dag-stripe', x: left, y: top, width: 6, height: n.height, rx: 2, ry: 2 });
    stripe.style.fill = stepColour(n.name, order);
    g.appendChild(stripe);
    g.appendChild(
      s('text', { className: 'nbscale-dag-label', x: n.x + 3, y: n.y, 'text-anchor': 'middle', 'dominant-baseline': 'central' }, n.name)
    );
    if (options.onSelect) {
      const select = options.onSelect;
      g.addEventListener('click', () => select(n.name));
      g.addEventListener('keydown', (ev: Event) => {
        const k = (ev as KeyboardEvent).key;
        if (k === 'Enter' || k === ' ') {
          ev.preventDefault();
          select(n.name);
        }
      });
    }
    nodes.appendChild(g);
  }
  svg.appendChild(nodes);
  return svg;
}
