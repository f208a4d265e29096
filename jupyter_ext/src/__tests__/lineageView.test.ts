import { ILineageModel, ILineageNode, ILineageSource, LineagePane, renderLineage, shortDigest } from '../lineageView';
import { MetricsSection } from '../metricsSection';
import { attach, detail, flush, history, loaded, summary } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

function node(step: string, extra: Partial<ILineageNode> = {}): ILineageNode {
  return {
    step,
    status: 'succeeded',
    cached: false,
    cached_from: null,
    source: 'recorded',
    hash: `sha256:${step}`,
    key: `sha256:key-of-${step}-0123456789abcdef`,
    parameters: {},
    inputs: {},
    outputs: {},
    files_read: {},
    files_written: {},
    modules: {},
    packages: { pandas: '3.1.1', python: '3.11.7', click: '8.5.1' },
    imported: ['pandas'],
    truncated: {},
    ...extra
  };
}

/** The lineage of metric `score` as the server sends it: metrics ← evaluate ← (count ← feat ← load, feat). */
function model(extra: Partial<ILineageModel> = {}): ILineageModel {
  return {
    run: { id: 'r2abcdef0123', notebook: 'nb.ipynb', engine: 'local', status: 'succeeded' },
    name: 'score',
    kind: 'metric',
    step: 'metrics',
    value: 4,
    nodes: [
      node('metrics', { inputs: { score: { step: 'evaluate', digest: 'xxh3_128:aaa' } } }),
      node('evaluate', {
        inputs: { n: { step: 'count', digest: 'xxh3_128:bbb' }, total: { step: 'feat', digest: 'xxh3_128:ccc' } }
      }),
      node('count', { inputs: { df: { step: 'feat', digest: 'xxh3_128:ddd' } } }),
      node('feat', { parameters: { scale: 2 }, inputs: { df: { step: 'load', digest: 'xxh3_128:eee' } }, cached_from: 'r1000000', status: 'cached', cached: true, source: 'run' }),
      node('load', { files_read: { 'data/<b>x</b>.csv': 'xxh3_128:ade8ba072bff949c95a6ee09f97d15ae' } })
    ],
    edges: [],
    ...extra
  };
}

class FakeSource implements ILineageSource {
  calls: [string, string, string][] = [];
  constructor(private readonly answer: (name: string) => Promise<ILineageModel>) {}
  lineage(path: string, runId: string, name: string): Promise<ILineageModel> {
    this.calls.push([path, runId, name]);
    return this.answer(name);
  }
}

describe('Lineage view', () => {
  it('shows the producing step at the root and upstream steps below it, once each', () => {
    const el = renderLineage(model());
    expect(el.querySelector('.nbscale-subtitle')!.textContent).toBe('Lineage of score = 4');
    const root = el.querySelector('.nbscale-lineage-tree > li')!;
    expect(root.getAttribute('data-step')).toBe('metrics');
    // the producing step's details open, the upstream steps' folded (the panel is narrow)
    expect(root.querySelector('details')!.open).toBe(true);
    expect(el.querySelector<HTMLDetailsElement>('li[data-step="load"] details')!.open).toBe(false);
    const steps = Array.from(el.querySelectorAll('li[data-step]')).map(li => li.getAttribute('data-step'));
    expect(steps).toEqual(['metrics', 'evaluate', 'count', 'feat', 'load', 'feat']);
    const repeated = el.querySelectorAll('li[data-step="feat"]')[1];
    expect(repeated.textContent).toContain('(shown above)');
    expect(repeated.querySelector('.nbscale-lineage-details')).toBeNull();
  });

  it('lists parameters, inputs, files with digests, packages and where a cached step came from', () => {
    const el = renderLineage(model());
    const feat = el.querySelector('li[data-step="feat"]')!;
    expect(feat.querySelector('.nbscale-lineage-step')!.textContent).toContain('cached from run r1000000');
    expect(feat.querySelector('[data-kind="parameter"]')!.textContent).toBe('parameter scale = 2');
    expect(feat.querySelector('[data-kind="input"]')!.textContent).toBe('input df ← load (xxh3_128:eee)');
    const file = el.querySelector('li[data-step="load"] [data-kind="file"]')!;
    expect(file.textContent).toBe(`file read data/<b>x</b>.csv (${shortDigest('xxh3_128:ade8ba072bff949c95a6ee09f97d15ae')})`);
    expect(file.getAttribute('title')).toBe('xxh3_128:ade8ba072bff949c95a6ee09f97d15ae');
    expect(el.querySelector('b')).toBeNull(); // text, never HTML
    const packages = el.querySelector('li[data-step="load"] [data-kind="packages"]')!;
    expect(packages.textContent).toBe('packages pandas 3.1.1, python 3.11.7 (+1 more loaded)');
  });

  it('names a stored value by its digest', () => {
    const el = renderLineage(model({ name: 'df', kind: 'output', step: 'load', value: undefined, digest: 'xxh3_128:eee' }));
    expect(el.querySelector('.nbscale-subtitle')!.textContent).toBe('Lineage of df (xxh3_128:eee)');
    expect(Array.from(el.querySelectorAll('li[data-step]')).map(li => li.getAttribute('data-step'))).toEqual(['load']);
  });

  it('shows the server error as text, and a later request wins', async () => {
    let release: (m: ILineageModel) => void = () => undefined;
    const source = new FakeSource(name =>
      name === 'slow'
        ? new Promise(resolve => (release = resolve))
        : name === 'score'
          ? Promise.resolve(model())
          : Promise.reject(new Error("run r2 has no metric or stored value named '<i>x</i>'"))
    );
    const pane = new LineagePane(() => source);
    const slow = pane.show('nb.ipynb', 'r2', 'slow');
    await pane.show('nb.ipynb', 'r2', 'score');
    release(model({ name: 'slow' }));
    await slow;
    expect(pane.node.querySelector('.nbscale-lineage')!.getAttribute('data-name')).toBe('score');
    await pane.show('nb.ipynb', 'r2', 'x');
    expect(pane.node.querySelector('.nbscale-error')!.textContent).toContain("named '<i>x</i>'");
    expect(pane.node.querySelector('i')).toBeNull();
    (pane.node.querySelector('.nbscale-lineage-close') as HTMLElement).click();
    expect(pane.node.textContent).toBe('');
  });

  it("opens from a metric of the Metrics section, for the shown run", async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r2', 'succeeded')];
      api.details.set('r2', detail('r2', 'succeeded', [], { score: 4 }));
      api.metricsHistory = history();
    });
    const section = attach(new MetricsSection(state));
    const source = new FakeSource(() => Promise.resolve(model()));
    section.lineageSource = source;
    (section.node.querySelector('[data-metric="score"] .nbscale-lineage-button') as HTMLElement).click();
    await flush();
    expect(source.calls).toEqual([[state.path, 'r2', 'score']]);
    expect(section.node.querySelector('.nbscale-lineage li[data-step="load"]')).not.toBeNull();
    section.dispose();
    state.dispose();
  });
});
