import { renderDag } from '../dag';
import { layoutPipeline, nodeWidth } from '../layout';
import { irisPipeline } from './fixtures';

describe('DAG layout (dagre)', () => {
  const pipeline = irisPipeline();
  const layout = layoutPipeline(pipeline);
  const node = (name: string) => layout.nodes.find(n => n.name === name)!;

  it('places every step, each edge going downwards', () => {
    expect(layout.nodes).toHaveLength(6);
    expect(layout.edges).toHaveLength(7);
    for (const e of pipeline.edges) {
      expect(node(e.from).y).toBeLessThan(node(e.to).y);
    }
  });

  it('puts parallel steps side by side on one rank', () => {
    expect(node('train_lr').y).toBe(node('train_rf').y);
    expect(node('train_lr').x).not.toBe(node('train_rf').x);
  });

  it('does not overlap boxes and keeps them inside the drawing', () => {
    for (const a of layout.nodes) {
      expect(a.x - a.width / 2).toBeGreaterThanOrEqual(0);
      expect(a.x + a.width / 2).toBeLessThanOrEqual(layout.width);
      expect(a.y + a.height / 2).toBeLessThanOrEqual(layout.height);
      for (const b of layout.nodes) {
        if (a === b) {
          continue;
        }
        const apart = Math.abs(a.x - b.x) >= (a.width + b.width) / 2 || Math.abs(a.y - b.y) >= (a.height + b.height) / 2;
        expect(apart).toBe(true);
      }
    }
  });

  it('routes edges with points from the layout, inside the drawing', () => {
    for (const e of layout.edges) {
      expect(e.points.length).toBeGreaterThanOrEqual(2);
      for (const p of e.points) {
        expect(p.x).toBeGreaterThanOrEqual(0);
        expect(p.y).toBeGreaterThanOrEqual(0);
        expect(p.x).toBeLessThanOrEqual(layout.width);
        expect(p.y).toBeLessThanOrEqual(layout.height);
      }
    }
  });

  it('sizes boxes for their labels', () => {
    expect(nodeWidth('a_much_longer_step_name')).toBeGreaterThan(nodeWidth('load'));
  });

  it('ignores edges to unknown steps and self loops', () => {
    const l = layoutPipeline({ steps: pipeline.steps.slice(0, 2), edges: [...pipeline.edges, { from: 'load', to: 'load', names: [] }] });
    expect(l.edges).toHaveLength(1);
  });
});

describe('DAG rendering (SVG)', () => {
  const layout = layoutPipeline(irisPipeline());

  it('draws one box per step and one arrow per edge', () => {
    const svg = renderDag(layout);
    expect(svg.tagName).toBe('svg');
    expect(svg.querySelectorAll('.nbscale-dag-node')).toHaveLength(6);
    expect(svg.querySelectorAll('.nbscale-dag-edge')).toHaveLength(7);
    expect(svg.getAttribute('data-steps')).toBe('6');
    expect(svg.querySelector('marker')).not.toBeNull();
  });

  it('colours boxes by run status and marks the selected step', () => {
    const svg = renderDag(layout, { statuses: { load: 'succeeded', split: 'failed' }, selected: 'split' });
    const load = svg.querySelector('[data-step="load"]')!;
    expect(load.getAttribute('class')).toContain('nbscale-status-succeeded');
    const split = svg.querySelector('[data-step="split"]')!;
    expect(split.getAttribute('class')).toContain('nbscale-status-failed');
    expect(split.getAttribute('class')).toContain('nbscale-selected');
    expect(svg.querySelector('[data-step="metrics"]')!.getAttribute('data-status')).toBe('none');
  });

  it('selects a step on click and on Enter', () => {
    const selected: string[] = [];
    const svg = renderDag(layout, { onSelect: s => selected.push(s) });
    (svg.querySelector('[data-step="train_rf"]') as SVGElement).dispatchEvent(new MouseEvent('click', { bubbles: true }));
    (svg.querySelector('[data-step="evaluate"]') as SVGElement).dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter' }));
    expect(selected).toEqual(['train_rf', 'evaluate']);
  });

  it('shows names as text, never markup', () => {
    const l = layoutPipeline({
      steps: [{ name: '<img src=x onerror=alert(1)>', cells: [0], inputs: [], outputs: [], resources: {}, hash: '' }],
      edges: []
    });
    const svg = renderDag(l);
    expect(svg.querySelector('img')).toBeNull();
    expect(svg.querySelector('text')!.textContent).toBe('<img src=x onerror=alert(1)>');
  });

  it('labels edges with the names that flow', () => {
    const svg = renderDag(layout);
    const edge = svg.querySelector('[data-from="split"][data-to="train_lr"] title')!;
    expect(edge.textContent).toBe('split → train_lr: X_train, y_train');
  });
});
