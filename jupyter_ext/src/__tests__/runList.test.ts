import { parameterText, RunListSection, runDuration } from '../runList';
import { attach, detail, flush, loaded, summary } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

function run(id: string, status: string, created: string, parameters: Record<string, unknown>, engine = 'dask') {
  return { ...summary(id, status, created), engine, parameters, finished: status === 'running' ? null : created.replace('10:00:00', '10:00:03') };
}

const RUNS = [
  // newest first, as the server lists them
  run('cccc3333', 'running', '2026-11-28T12:00:00+00:00', { seed: 3, C: 1 }, 'local'),
  run('bbbb2222', 'failed', '2026-11-28T11:00:00+00:00', { seed: 2, C: 1 }, 'papermill'),
  run('aaaa1111', 'succeeded', '2026-11-28T10:00:00+00:00', { seed: 1, C: 1 })
];

describe('run list', () => {
  it('lists every run with status, engine, duration and the parameters that differ', async () => {
    const { state, api } = await loaded(api => {
      api.runList = RUNS;
    });
    expect(api.callsTo('runs').some(c => c.args[1] === 200)).toBe(true);
    const section = attach(new RunListSection(state, () => undefined));
    const rows = Array.from(section.node.querySelectorAll('.nbscale-runs-table tbody tr'));
    expect(rows.map(r => r.getAttribute('data-run'))).toEqual(['cccc3333', 'bbbb2222', 'aaaa1111']);
    expect(rows.map(r => r.querySelector('.nbscale-run-engine')!.textContent)).toEqual(['local', 'papermill', 'dask']);
    expect(rows[2].querySelector('.nbscale-run-params')!.textContent).toBe('seed=1'); // C is the same everywhere
    expect(rows[2].querySelector('.nbscale-run-params')!.getAttribute('title')).toBe('seed=1, C=1');
    expect(rows[2].querySelector('.nbscale-dot')!.getAttribute('aria-label')).toBe('succeeded');
    expect(rows[2].querySelector('.nbscale-num')!.textContent).toBe('3.00 s');
    expect(section.node.textContent).toContain('3 runs');
    section.dispose();
    state.dispose();
  });

  it('shows a run when its row is clicked', async () => {
    const { state, api } = await loaded(api => {
      api.runList = RUNS;
      api.details.set('bbbb2222', detail('bbbb2222', 'failed', []));
    });
    const section = attach(new RunListSection(state, () => undefined));
    (section.node.querySelector('tr[data-run="bbbb2222"]') as HTMLElement).click();
    await flush();
    expect(state.run?.run_id).toBe('bbbb2222');
    expect(api.callsTo('run').map(c => c.args[1])).toContain('bbbb2222');
    expect(section.node.querySelector('tr[data-run="bbbb2222"]')!.className).toContain('nbscale-current-run');
    section.dispose();
    state.dispose();
  });

  it('compares two or more ticked runs, oldest first', async () => {
    const { state } = await loaded(api => {
      api.runList = RUNS;
    });
    const opened: string[][] = [];
    const section = attach(new RunListSection(state, ids => opened.push(ids)));
    const button = section.node.querySelector('.nbscale-compare-button') as HTMLButtonElement;
    const tick = (id: string) => {
      const box = section.node.querySelector(`input[data-run="${id}"]`) as HTMLInputElement;
      box.checked = !box.checked;
      box.dispatchEvent(new Event('change'));
    };
    expect(button.disabled).toBe(true);
    tick('cccc3333');
    expect(button.disabled).toBe(true);
    tick('aaaa1111');
    expect(button.disabled).toBe(false);
    expect(button.textContent).toBe('Compare 2 runs');
    button.click();
    expect(opened).toEqual([['aaaa1111', 'cccc3333']]);
    expect(state.run?.run_id).not.toBe('aaaa1111'); // ticking is not showing
    section.dispose();
    state.dispose();
  });

  it('follows run events: a new run is fetched, a status change shows at once', async () => {
    const { state, api } = await loaded(api => {
      api.runList = RUNS.slice(1);
    });
    const section = attach(new RunListSection(state, () => undefined));
    api.runList = RUNS;
    state.handleEvent({ type: 'run', run_id: 'cccc3333', status: 'pending' });
    await flush();
    expect(section.node.querySelectorAll('.nbscale-runs-table tbody tr')).toHaveLength(3);
    state.handleEvent({ type: 'run', run_id: 'bbbb2222', status: 'cancelled' });
    expect(section.node.querySelector('tr[data-run="bbbb2222"] .nbscale-dot')!.getAttribute('aria-label')).toBe('cancelled');
    section.dispose();
    state.dispose();
  });

  it('says when there are no runs', async () => {
    const { state } = await loaded();
    const section = attach(new RunListSection(state, () => undefined));
    expect(section.node.textContent).toContain('No runs yet');
    section.dispose();
    state.dispose();
  });
});

describe('run list helpers', () => {
  it('measures a run, finished or still going', () => {
    const r = run('a', 'succeeded', '2026-11-28T10:00:00+00:00', {});
    expect(runDuration(r)).toBe(3);
    const going = run('b', 'running', '2026-11-28T10:00:00+00:00', {});
    expect(runDuration(going, new Date('2026-11-28T10:00:10+00:00'))).toBe(10);
    expect(runDuration({ ...going, status: 'failed' })).toBeNull(); // finished, but no finish time
    expect(parameterText(run('c', 'succeeded', '2026-11-28T10:00:00+00:00', { s: 'x', l: [1, 2] }), ['l', 's'])).toBe('l=[1,2], s=x');
  });
});
