import { diagnosticsByStep, renderDag, worstSeverity } from '../dag';
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

  it('draws at its natural size: no shrinking to the container, a zoom scales the drawing', () => {
    const svg = renderDag(layout);
    expect(svg.getAttribute('width')).toBe(String(Math.ceil(layout.width)));
    expect(svg.style.maxWidth).toBe('');
    const zoomed = renderDag(layout, { zoom: 2 });
    expect(zoomed.getAttribute('width')).toBe(String(Math.ceil(layout.width * 2)));
    expect(zoomed.getAttribute('viewBox')).toBe(svg.getAttribute('viewBox'));
  });

  it('marks steps with diagnostics and lists them, cell numbers 1-based, in the title', () => {
    const pipeline = irisPipeline();
    pipeline.diagnostics = [
      { severity: 'warning', code: 'seeding-call', message: 'np.random.seed does not travel', cell: 9, line: 1, col: 0 },
      { severity: 'error', code: 'x', message: 'broken', cell: 9, line: 2, col: 0 },
      { severity: 'info', code: 'y', message: 'fyi', cell: 4, line: null, col: null },
      { severity: 'error', code: 'z', message: 'of the notebook', cell: null, line: null, col: null }
    ];
    const byStep = diagnosticsByStep(pipeline);
    expect(Object.keys(byStep).sort()).toEqual(['load', 'train_lr']);
    expect(worstSeverity(byStep.train_lr)).toBe('error');
    const svg = renderDag(layout, { diagnostics: byStep });
    const lr = svg.querySelector('[data-step="train_lr"]')!;
    expect(lr.getAttribute('class')).toContain('nbscale-dag-has-error');
    expect(lr.querySelector('.nbscale-dag-diagnostic.nbscale-severity-error')).not.toBeNull();
    expect(lr.querySelector('title')!.textContent).toBe(
      'train_lr\nwarning (cell 10): np.random.seed does not travel\nerror (cell 10): broken'
    );
    expect(lr.getAttribute('aria-label')).toContain('2 diagnostics');
    expect(svg.querySelector('[data-step="load"]')!.getAttribute('data-severity')).toBe('info');
    expect(svg.querySelector('[data-step="split"] .nbscale-dag-diagnostic')).toBeNull();
  });

  it('writes the names that flow on the edges when the layout made room for them', () => {
    expect(renderDag(layout).querySelectorAll('.nbscale-dag-edge-label')).toHaveLength(0);
    const svg = renderDag(layoutPipeline(irisPipeline(), { edgeLabels: true, direction: 'LR' }));
    const labels = Array.from(svg.querySelectorAll('.nbscale-dag-edge-label'));
    expect(labels).toHaveLength(7);
    const split = svg.querySelector('.nbscale-dag-edge-label[data-from="split"][data-to="evaluate"]')!;
    expect(split.childNodes[0].textContent).toBe('X_test, y_test');
  });
});
