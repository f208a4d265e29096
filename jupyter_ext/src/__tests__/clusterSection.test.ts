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
    expect((section.node.querySelector('.nbscale-cluster-run-own') as HTMLElement).hidden).toBe(false);
    expect((section.node.querySelector('.nbscale-scale-button')!.parentElement as HTMLElement).hidden).toBe(true);
    expect(section.node.textContent).toContain("run's cluster");
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
