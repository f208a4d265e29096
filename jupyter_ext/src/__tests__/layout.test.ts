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
