/**
 * Lays the step DAG out with dagre (a layered, Sugiyama-style layout): node positions and
 * edge routes come from the library, never from hand-placed coordinates.
 */
import { graphlib, layout } from '@dagrejs/dagre';

import { IPipelineModel } from './wire';

export interface ILaidOutNode {
  name: string;
  x: number; // centre
  y: number; // centre
  width: number;
  height: number;
}

export interface ILaidOutEdge {
  from: string;
  to: string;
  names: string[];
  points: { x: number; y: number }[];
  /** Where the names that flow are written (centre), when the layout made room for them. */
  label?: { x: number; y: number; width: number; height: number; text: string };
}

export interface IDagLayout {
  width: number;
  height: number;
  nodes: ILaidOutNode[];
  edges: ILaidOutEdge[];
}

export interface ILayoutOptions {
  /** 'TB' (top to bottom, fits a narrow sidebar) or 'LR'. */
  direction?: 'TB' | 'LR';
  charWidth?: number;
  nodeHeight?: number;
  padding?: number;
  /** Make room for each edge's names (the main-area view); the sidebar shows them as titles. */
  edgeLabels?: boolean;
}

export const NODE_HEIGHT = 30;
const CHAR_WIDTH = 7.2;
const MIN_WIDTH = 64;
const LABEL_HEIGHT = 16;
const LABEL_NAMES = 3; // more names than this are counted, not listed: "a, b, c +2"

/** An edge's label: the names that flow along it (none: an ordering edge, no label). */
export function edgeLabelText(names: string[]): string {
  if (names.length <= LABEL_NAMES) {
    return names.join(', ');
  }
  return `${names.slice(0, LABEL_NAMES).join(', ')} +${names.length - LABEL_NAMES}`;
}

/** The width a step box needs for its label. */
export function nodeWidth(name: string, charWidth = CHAR_WIDTH): number {
  return Math.max(MIN_WIDTH, Math.ceil(name.length * charWidth + 30));
}

export function layoutPipeline(pipeline: Pick<IPipelineModel, 'steps' | 'edges'>, options: ILayoutOptions = {}): IDagLayout {
  const padding = options.padding ?? 8;
  const height = options.nodeHeight ?? NODE_HEIGHT;
  const g = new graphlib.Graph({ multigraph: false });
  g.setGraph({
    rankdir: options.direction ?? 'TB',
    nodesep: 18,
    ranksep: 28,
    edgesep: 8,
    marginx: padding,
    marginy: padding
  });
  g.setDefaultEdgeLabel(() => ({}));
  const names = new Set<string>();
  for (const step of pipeline.steps) {
    names.add(step.name);
    g.setNode(step.name, { width: nodeWidth(step.name, options.charWidth), height });
  }
  const edges = pipeline.edges.filter(e => names.has(e.from) && names.has(e.to) && e.from !== e.to);
  const charWidth = options.charWidth ?? CHAR_WIDTH;
  for (const e of edges) {
    const text = options.edgeLabels ? edgeLabelText(e.names ?? []) : '';
    g.setEdge(e.from, e.to, text ? { width: Math.ceil(text.length * charWidth * 0.9 + 8), height: LABEL_HEIGHT, labelpos: 'c' } : {});
  }
  layout(g);
  const graph = g.graph() as { width?: number; height?: number };
  const nodes: ILaidOutNode[] = pipeline.steps.map(step => {
    const n = g.node(step.name) as any;
    return { name: step.name, x: n.x, y: n.y, width: n.width, height: n.height };
  });
  const laidEdges: ILaidOutEdge[] = edges.map(e => {
    const data = g.edge(e.from, e.to) as any;
    const laid: ILaidOutEdge = {
      from: e.from,
      to: e.to,
      names: e.names ?? [],
      points: (data?.points ?? []).map((p: any) => ({ x: p.x, y: p.y }))
    };
    if (data?.width && typeof data.x === 'number') {
      laid.label = { x: data.x, y: data.y, width: data.width, height: data.height, text: edgeLabelText(laid.names) };
    }
    return laid;
  });
  // Edge routes may bulge past the nodes' box: fit the drawing to everything, with the margin.
  let minX = Infinity;
  let minY = Infinity;
  let maxX = -Infinity;
  let maxY = -Infinity;
  const grow = (x: number, y: number) => {
    minX = Math.min(minX, x);
    minY = Math.min(minY, y);
    maxX = Math.max(maxX, x);
    maxY = Math.max(maxY, y);
  };
  for (const n of nodes) {
    grow(n.x - n.width / 2, n.y - n.height / 2);
    grow(n.x + n.width / 2, n.y + n.height / 2);
  }
  for (const e of laidEdges) {
    for (const p of e.points) {
      grow(p.x, p.y);
    }
    if (e.label) {
      grow(e.label.x - e.label.width / 2, e.label.y - e.label.height / 2);
      grow(e.label.x + e.label.width / 2, e.label.y + e.label.height / 2);
    }
  }
  if (!isFinite(minX)) {
    return { width: Math.max(graph.width ?? 0, 1), height: Math.max(graph.height ?? 0, 1), nodes, edges: laidEdges };
  }
  const dx = padding - minX;
  const dy = padding - minY;
  for (const n of nodes) {
    n.x += dx;
    n.y += dy;
  }
  for (const e of laidEdges) {
    for (const p of e.points) {
      p.x += dx;
      p.y += dy;
    }
    if (e.label) {
      e.label.x += dx;
      e.label.y += dy;
    }
  }
  return {
    width: Math.ceil(maxX - minX + 2 * padding),
    height: Math.ceil(maxY - minY + 2 * padding),
    nodes,
    edges: laidEdges
  };
}
