import { ClusterSection, cpuFraction, memoryFraction, taskStates } from '../clusterSection';
import { attach, cluster, flush, loaded } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

describe('Cluster section', () => {
  it('offers to start a cluster when there is none', async () => {
    const { state, api } = await loaded();
    const section = attach(new ClusterSection(state));
    expect(section.node.textContent).toContain('No Dask cluster yet');
    (Array.from(section.node.querySelectorAll('button')).find(b => b.textContent === 'Start LocalCluster') as HTMLButtonElement).click();
    await flush();
    expect(api.callsTo('clusterAction')[0].args[0]).toEqual({ action: 'start' });
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('1');
    section.dispose();
    state.dispose();
  });

  it('shows workers, threads, memory and CPU bars, tasks and the dashboard link', async () => {
    const { state } = await loaded(api => (api.clusterModel = cluster(2)));
    const section = attach(new ClusterSection(state));
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('2');
    expect(section.node.querySelectorAll('tr[data-worker]')).toHaveLength(2);
    expect(section.node.querySelector('.nbscale-memory .nbscale-bar-label')!.textContent).toBe('400.0 MiB / 8.00 GiB');
    expect(section.node.querySelector('.nbscale-cpu')!.getAttribute('aria-valuenow')).toBe('25');
    expect(Array.from(section.node.querySelectorAll('.nbscale-tasks .nbscale-chip')).map(c => c.textContent)).toEqual([
      'memory 3',
      'processing 1'
    ]);
    expect((section.node.querySelector('.nbscale-dashboard-link') as HTMLAnchorElement).href).toBe('http://127.0.0.1:8787/status');
    section.dispose();
    state.dispose();
  });

  it('scales to N and sets adaptive bounds', async () => {
    const { state, api } = await loaded(api => (api.clusterModel = cluster(1)));
    const section = attach(new ClusterSection(state));
    const n = section.node.querySelector('input[name="n"]') as HTMLInputElement;
    expect(n.value).toBe('1');
    n.value = '2';
    n.dispatchEvent(new Event('input'));
    (section.node.querySelector('.nbscale-scale-button') as HTMLButtonElement).click();
    await flush();
    expect(api.callsTo('clusterAction').map(c => c.args[0])).toEqual([{ action: 'scale', n: 2 }]);
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('2');
    (section.node.querySelector('input[name="minimum"]') as HTMLInputElement).value = '1';
    (section.node.querySelector('input[name="maximum"]') as HTMLInputElement).value = '4';
    await section.adapt();
    expect(api.callsTo('clusterAction')[1].args[0]).toEqual({ action: 'adapt', minimum: 1, maximum: 4 });
    (section.node.querySelector('input[name="maximum"]') as HTMLInputElement).value = '0';
    await section.adapt();
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toContain('Adaptive bounds');
    section.dispose();
    state.dispose();
  });

  it('keeps what the user typed while samples arrive', async () => {
    const { state } = await loaded(api => (api.clusterModel = cluster(1)));
    const section = attach(new ClusterSection(state));
    const n = section.node.querySelector('input[name="n"]') as HTMLInputElement;
    n.value = '5';
    n.dispatchEvent(new Event('input'));
    state.handleEvent({ type: 'cluster', payload: cluster(1) });
    expect(n.value).toBe('5');
    section.dispose();
    state.dispose();
  });

  it("shows a run's own cluster without scale controls, and offers to start one", async () => {
    const { state } = await loaded(api => (api.clusterModel = { ...cluster(2), kind: 'run' }));
    const section = attach(new ClusterSection(state));
    expect(section.node.querySelector('.nbscale-worker-count')!.textContent).toBe('2');
    expect(section.node.querySelector('.nbscale-cluster-run-own')).not.toBeNull();
    // not merely `hidden` (which the rows' display:flex overrode): not there to click at all
    expect(section.node.querySelector('.nbscale-scale-button')).toBeNull();
    expect(section.node.querySelector('input[name="n"]')).toBeNull();
    const labels = Array.from(section.node.querySelectorAll('button')).map(b => b.textContent);
    expect(labels).not.toContain('Adapt');
    expect(labels).not.toContain('Close cluster');
    expect(section.node.textContent).toContain("run's cluster");
    // when the server's own cluster follows, the controls come back, keeping the inputs
    state.handleEvent({ type: 'cluster', payload: cluster(1) });
    expect(section.node.querySelector('.nbscale-scale-button')).not.toBeNull();
    expect((section.node.querySelector('input[name="n"]') as HTMLInputElement).value).toBe('1');
    expect(section.node.querySelector('.nbscale-cluster-run-own')).toBeNull();
    section.dispose();
    state.dispose();
  });

  it('links the dashboard through the proxy and opens its plots', async () => {
    const proxied = {
      ...cluster(1),
      dashboard: { link: 'http://127.0.0.1:8787/status', proxy_path: 'proxy/8787/status', note: null }
    };
    const { state } = await loaded(api => (api.clusterModel = proxied));
    const section = attach(new ClusterSection(state));
    const link = section.node.querySelector('.nbscale-dashboard-link') as HTMLAnchorElement;
    expect(link.getAttribute('href')).toMatch(/\/proxy\/8787\/status$/);
    expect(new URL(link.href).origin).toBe(window.location.origin);
    const requests: string[] = [];
    section.plotRequested.connect((_, r) => requests.push(r.url));
    const button = section.node.querySelector('button[data-plot="individual-task-stream"]') as HTMLButtonElement;
    state.handleEvent({ type: 'cluster', payload: { ...proxied, cpu: 7 } });
    expect(section.node.querySelector('button[data-plot="individual-task-stream"]')).toBe(button); // not swapped by a sample
    button.click();
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatch(/\/proxy\/8787\/individual-task-stream$/);
    section.dispose();
    state.dispose();
  });

  it('says why the dashboard is missing or direct', async () => {
    const note = 'install bokeh for the dashboard (pip install bokeh)';
    const { state } = await loaded(api => (api.clusterModel = { ...cluster(1), dashboard_link: null, dashboard: { link: null, proxy_path: null, note } }));
    const section = attach(new ClusterSection(state));
    expect(section.node.querySelector('.nbscale-dashboard-link')).toBeNull();
    expect(section.node.querySelector('.nbscale-dashboard-note')!.textContent).toBe(note);
    expect(section.node.querySelector('.nbscale-plot-button')).toBeNull();
    const direct = { link: 'http://127.0.0.1:8787/status', proxy_path: null, note: 'jupyter-server-proxy is not installed' };
    state.handleEvent({ type: 'cluster', payload: { ...cluster(1), dashboard: direct } });
    expect((section.node.querySelector('.nbscale-dashboard-link') as HTMLAnchorElement).href).toBe('http://127.0.0.1:8787/status');
    expect(section.node.querySelector('.nbscale-dashboard-note')!.textContent).toContain('jupyter-server-proxy');
    expect(section.node.querySelector('.nbscale-plot-button')).toBeNull(); // another origin: a link, never a pane
    section.dispose();
    state.dispose();
  });

  it('shows why there is no cluster', async () => {
    const { state } = await loaded(api => (api.clusterModel = { status: 'none', error: 'scheduler at tcp://x:8786 did not answer' } as any));
    const section = attach(new ClusterSection(state));
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toContain('did not answer');
    section.dispose();
    state.dispose();
  });

  it('labels the worker table and every bar for screen readers', async () => {
    const { state } = await loaded(api => (api.clusterModel = cluster(2)));
    const section = attach(new ClusterSection(state));
    const table = section.node.querySelector('table.nbscale-workers') as HTMLTableElement;
    expect(table.getAttribute('aria-label')).toBe('Workers');
    const headers = Array.from(table.querySelectorAll('th'));
    expect(headers.map(th => th.textContent)).toEqual(['worker', 'threads', 'memory', 'CPU']);
    expect(headers.every(th => th.title && th.getAttribute('scope') === 'col')).toBe(true); // they may ellipsize
    const bars = Array.from(section.node.querySelectorAll('[role=progressbar]'));
    expect(bars.length).toBe(2 + 2 * 2);
    expect(bars.every(b => b.getAttribute('aria-label') && b.getAttribute('aria-valuetext'))).toBe(true);
    expect(bars.map(b => b.getAttribute('aria-label'))).toEqual(expect.arrayContaining(['Cluster memory', 'Cluster CPU']));
    section.dispose();
    state.dispose();
  });

  it('computes bar fractions and task states', () => {
    expect(cpuFraction(150, 2)).toBe(0.75);
    expect(cpuFraction(500, 2)).toBe(1);
    expect(cpuFraction(undefined, 2)).toBe(0);
    expect(memoryFraction(1, 4)).toBe(0.25);
    expect(memoryFraction(1, 0)).toBe(0);
    expect(taskStates({ a: 1, b: 5, c: 0 })).toEqual([
      ['b', 5],
      ['a', 1]
    ]);
  });
});
