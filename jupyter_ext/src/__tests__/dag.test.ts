import { renderDag } from '../dag';
import { layoutPipeline } from '../layout';
import { irisPipeline } from './fixtures';

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
