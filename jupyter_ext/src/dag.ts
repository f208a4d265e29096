/**
 * Renders a laid-out DAG as SVG at its natural size (text never shrinks below the CSS font size;
 * a container scrolls or zooms it): one box per step (coloured stripe = the step's badge colour,
 * outline = its status in the shown run, a mark for its diagnostics), arrows for data and
 * ordering edges, and the names that flow when the layout made room for them.
 */
import { stepColour } from './colours';
import { s } from './dom';
import { cellLabel, statusLabel } from './format';
import { IDagLayout } from './layout';
import { IDiagnostic, IPipelineModel } from './wire';

export interface IDagRenderOptions {
  statuses?: Record<string, string>;
  selected?: string | null;
  onSelect?: (step: string) => void;
  /** Unique per panel so marker ids do not clash between documents. */
  idPrefix?: string;
  /** The diagnostics of each step (`diagnosticsByStep`): marked on its box, listed in its title. */
  diagnostics?: Record<string, IDiagnostic[]>;
  /** Drawn size = layout size × zoom (the main-area view's zoom; the sidebar draws at 1). */
  zoom?: number;
}

const SEVERITY_RANK: Record<string, number> = { error: 0, warning: 1, info: 2 };

/** Step → the diagnostics about one of its cells (a diagnostic of no cell belongs to no step). */
export function diagnosticsByStep(pipeline: Pick<IPipelineModel, 'steps' | 'diagnostics'>): Record<string, IDiagnostic[]> {
  const stepOfCell = new Map<number, string>();
  for (const step of pipeline.steps) {
    for (const cell of step.cells ?? []) {
      stepOfCell.set(cell, step.name);
    }
  }
  const out: Record<string, IDiagnostic[]> = {};
  for (const d of pipeline.diagnostics ?? []) {
    const step = d.cell === null || d.cell === undefined ? undefined : stepOfCell.get(d.cell);
    if (step !== undefined) {
      (out[step] = out[step] ?? []).push(d);
    }
  }
  return out;
}

/** The worst severity among diagnostics ('error' before 'warning' before 'info'). */
export function worstSeverity(diagnostics: IDiagnostic[]): string | null {
  let worst: string | null = null;
  for (const d of diagnostics) {
    if (worst === null || (SEVERITY_RANK[d.severity] ?? 3) < (SEVERITY_RANK[worst] ?? 3)) {
      worst = d.severity;
    }
  }
  return worst;
}

function nodeTitle(name: string, status: string, diagnostics: IDiagnostic[]): string {
  const lines = [status === 'none' ? name : `${name}: ${statusLabel(status)}`];
  for (const d of diagnostics) {
    const where = d.cell === null || d.cell === undefined ? '' : ` (${cellLabel(d.cell)})`;
    lines.push(`${d.severity}${where}: ${d.message}`);
  }
  return lines.join('\n');
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
  const zoom = options.zoom ?? 1;
  const svg = s('svg', {
    className: 'nbscale-dag',
    viewBox: `0 0 ${layout.width} ${layout.height}`,
    width: Math.ceil(layout.width * zoom),
    height: Math.ceil(layout.height * zoom),
    role: 'img',
    'aria-label': `Pipeline with ${layout.nodes.length} steps`,
    'data-steps': layout.nodes.length
  });
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
  const labels = s('g', { className: 'nbscale-dag-edge-labels' });
  for (const e of layout.edges) {
    if (e.label) {
      labels.appendChild(
        s(
          'text',
          {
            className: 'nbscale-dag-edge-label',
            x: e.label.x,
            y: e.label.y,
            'text-anchor': 'middle',
            'dominant-baseline': 'central',
            'data-from': e.from,
            'data-to': e.to
          },
          e.label.text,
          s('title', {}, e.names.join(', '))
        )
      );
    }
  }
  svg.appendChild(labels);

  const nodes = s('g', { className: 'nbscale-dag-nodes' });
  const order = layout.nodes.map(n => n.name);
  for (const n of layout.nodes) {
    const status = statuses[n.name] ?? 'none';
    const left = n.x - n.width / 2;
    const top = n.y - n.height / 2;
    const diagnostics = options.diagnostics?.[n.name] ?? [];
    const severity = worstSeverity(diagnostics);
    const g = s('g', {
      className: `nbscale-dag-node nbscale-status-${status}${options.selected === n.name ? ' nbscale-selected' : ''}${
        severity ? ` nbscale-dag-has-${severity}` : ''
      }`,
      'data-step': n.name,
      'data-status': status,
      'data-severity': severity ?? undefined,
      tabindex: 0,
      role: 'button',
      'aria-label': `step ${n.name}${status !== 'none' ? `, ${statusLabel(status)}` : ''}${
        diagnostics.length ? `, ${diagnostics.length} diagnostic${diagnostics.length === 1 ? '' : 's'}` : ''
      }`
    });
    g.appendChild(s('title', {}, nodeTitle(n.name, status, diagnostics)));
    g.appendChild(
      s('rect', { className: 'nbscale-dag-box', x: left, y: top, width: n.width, height: n.height, rx: 5, ry: 5 })
    );
    const stripe = s('rect', { className: 'nbscale-dag-stripe', x: left, y: top, width: 6, height: n.height, rx: 2, ry: 2 });
    stripe.style.fill = stepColour(n.name, order);
    g.appendChild(stripe);
    g.appendChild(
      s('text', { className: 'nbscale-dag-label', x: n.x + 3, y: n.y, 'text-anchor': 'middle', 'dominant-baseline': 'central' }, n.name)
    );
    if (severity) {
      g.appendChild(diagnosticMark(left + n.width, top, severity));
    }
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

/** A round mark on a box's top-right corner: "!" for an error or warning, "i" for information. */
function diagnosticMark(x: number, y: number, severity: string): SVGGElement {
  return s(
    'g',
    { className: `nbscale-dag-diagnostic nbscale-severity-${severity}`, 'aria-hidden': 'true' },
    s('circle', { cx: x - 2, cy: y + 2, r: 7 }),
    s('text', { x: x - 2, y: y + 2.5, 'text-anchor': 'middle', 'dominant-baseline': 'central' }, severity === 'info' ? 'i' : '!')
  );
}
