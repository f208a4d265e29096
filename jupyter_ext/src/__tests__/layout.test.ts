import { edgeLabelText, layoutPipeline, nodeWidth } from '../layout';
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

  it('makes room for edge labels inside the drawing, clear of the boxes', () => {
    const pipeline = irisPipeline();
    pipeline.edges.push({ from: 'load', to: 'metrics', names: [] }); // an ordering edge: no label
    const l = layoutPipeline(pipeline, { edgeLabels: true, direction: 'LR' });
    const labelled = l.edges.filter(e => e.label);
    expect(labelled).toHaveLength(7);
    expect(l.edges.find(e => e.from === 'load' && e.to === 'metrics')!.label).toBeUndefined();
    for (const e of labelled) {
      const b = e.label!;
      expect(b.text).toBe(edgeLabelText(e.names));
      expect(b.x - b.width / 2).toBeGreaterThanOrEqual(0);
      expect(b.x + b.width / 2).toBeLessThanOrEqual(l.width);
      for (const n of l.nodes) {
        const apart = Math.abs(b.x - n.x) >= (b.width + n.width) / 2 || Math.abs(b.y - n.y) >= (b.height + n.height) / 2;
        expect(apart).toBe(true);
      }
    }
    // left to right: every edge goes rightwards
    const node = (name: string) => l.nodes.find(n => n.name === name)!;
    for (const e of irisPipeline().edges) {
      expect(node(e.from).x).toBeLessThan(node(e.to).x);
    }
  });

  it('counts the names past three on a label', () => {
    expect(edgeLabelText(['a', 'b'])).toBe('a, b');
    expect(edgeLabelText(['a', 'b', 'c', 'd', 'e'])).toBe('a, b, c +2');
    expect(edgeLabelText([])).toBe('');
  });
});
