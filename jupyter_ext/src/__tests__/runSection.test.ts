import { RunSection } from '../runSection';
import { attach, detail, flush, loaded, stepRun, summary } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

describe('Run section', () => {
  it('pre-fills typed inputs from the parameters cell', async () => {
    const { state } = await loaded(api => {
      api.pipelineModel.parameters.push({ name: 'verbose', type: 'bool', default: true });
      api.pipelineModel.parameters.push({ name: 'layers', type: 'list', default: [64, 32] });
    });
    const section = attach(new RunSection(state));
    const input = (name: string) => section.node.querySelector(`input[name="${name}"]`) as HTMLInputElement;
    expect(input('test_size').type).toBe('number');
    expect(input('test_size').step).toBe('any');
    expect(input('test_size').value).toBe('0.25');
    expect(input('seed').step).toBe('1');
    expect(input('seed').value).toBe('42');
    expect(input('verbose').type).toBe('checkbox');
    expect(input('verbose').checked).toBe(true);
    expect(input('layers').value).toBe('[64,32]');
    section.dispose();
    state.dispose();
  });

  it('runs on Dask with the edited parameters', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    const seed = section.node.querySelector('input[name="seed"]') as HTMLInputElement;
    seed.value = '7';
    seed.dispatchEvent(new Event('input'));
    (section.node.querySelector('button[data-engine="dask"]') as HTMLButtonElement).click();
    await flush();
    expect(api.callsTo('startRun')[0].args[0]).toMatchObject({ engine: 'dask', parameters: { seed: 7 } });
    expect((section.node.querySelector('button[data-engine="dask"]') as HTMLButtonElement).disabled).toBe(true);
    expect((section.node.querySelector('.nbscale-danger') as HTMLButtonElement).disabled).toBe(false);
    section.dispose();
    state.dispose();
  });

  it('refuses to run with an invalid parameter', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    const seed = section.node.querySelector('input[name="seed"]') as HTMLInputElement;
    seed.value = '4.5';
    seed.dispatchEvent(new Event('input'));
    expect(seed.getAttribute('aria-invalid')).toBe('true');
    expect(section.node.textContent).toContain('seed: expected an integer');
    await section.run('dask');
    expect(api.callsTo('startRun')).toHaveLength(0);
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toContain('Fix the parameters first: seed');
    section.dispose();
    state.dispose();
  });

  it('shows each step with status, duration and the progress count', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set(
        'r1',
        detail('r1', 'running', [
          stepRun('load', 'succeeded', { duration_s: 1.5 }),
          stepRun('split', 'cached', { cached: true }),
          stepRun('train_lr', 'running')
        ])
      );
    });
    const section = attach(new RunSection(state));
    const rows = Array.from(section.node.querySelectorAll('.nbscale-step'));
    expect(rows.map(r => r.getAttribute('data-step'))).toEqual(['load', 'split', 'train_lr', 'train_rf', 'evaluate', 'metrics']);
    expect(rows.map(r => r.getAttribute('data-status'))).toEqual(['succeeded', 'cached', 'running', 'pending', 'pending', 'pending']);
    expect(rows[0].querySelector('.nbscale-duration')!.textContent).toBe('1.50 s');
    expect(section.node.querySelector('.nbscale-progress-count')!.textContent).toBe('2/6 steps');
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'train_lr', status: 'succeeded' });
    expect(section.node.querySelector('[data-step="train_lr"]')!.getAttribute('data-status')).toBe('succeeded');
    expect(section.node.querySelector('.nbscale-progress-count')!.textContent).toBe('3/6 steps');
    section.dispose();
    state.dispose();
  });

  it('says which dependency made a step run again, as text', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'succeeded')];
      api.details.set('r1', detail('r1', 'succeeded', [stepRun('load', 'succeeded', { stale: ['data.csv changed (content)', '<b>x</b>'] })]));
    });
    const section = attach(new RunSection(state));
    await flush();
    const stale = section.node.querySelector('.nbscale-stale')!;
    expect(stale.textContent).toBe('ran again because: data.csv changed (content); <b>x</b>');
    expect(stale.querySelector('b')).toBeNull();
    section.dispose();
    state.dispose();
  });

  it('shows a failed step traceback as text and jumps to the failing cell', async () => {
    const evil = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'failed')];
      api.details.set(
        'r1',
        detail('r1', 'failed', [
          stepRun('load', 'succeeded'),
          stepRun('split', 'failed', {
            stdout: evil,
            error: {
              cell: 8,
              line: 3,
              ename: 'ValueError',
              evalue: evil,
              traceback: ['\u001b[0;31mTraceback (most recent call last)\u001b[0m', `ValueError: ${evil}`]
            }
          }),
          stepRun('train_lr', 'upstream_failed')
        ])
      );
    });
    const section = attach(new RunSection(state));
    expect(section.node.querySelector('img')).toBeNull();
    expect(section.node.querySelector('script')).toBeNull();
    const tb = section.node.querySelector('.nbscale-traceback')!;
    expect(tb.textContent).toBe(`Traceback (most recent call last)\nValueError: ${evil}`);
    expect(section.node.querySelector('.nbscale-error-title')!.textContent).toContain(`ValueError: ${evil}`);
    expect((window as any).__pwned).toBeUndefined();
    const cells: number[] = [];
    state.cellRequested.connect((_, i) => cells.push(i));
    const jump = section.node.querySelector('.nbscale-error-box .nbscale-link-button') as HTMLElement;
    expect(jump.textContent).toBe('cell 9, line 3'); // index 8, numbered as JupyterLab's status bar does
    jump.click();
    expect(cells).toEqual([8]);
    expect(section.node.querySelector('[data-step="train_lr"] .nbscale-step-status')!.textContent).toBe('upstream failed');
    section.dispose();
    state.dispose();
  });

  it("shows a plain reason without a traceback, and the run's own error", async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'failed')];
      api.details.set('r1', {
        ...detail('r1', 'failed', [
          stepRun('evaluate', 'upstream_failed', {
            error: { cell: null, line: null, ename: '', evalue: 'upstream failed: split', traceback: '' }
          })
        ]),
        error: 'step split failed'
      });
    });
    const section = attach(new RunSection(state));
    const row = section.node.querySelector('[data-step="evaluate"]')!;
    expect(row.querySelector('.nbscale-step-reason')!.textContent).toBe('upstream failed: split');
    expect(row.querySelector('.nbscale-error-box')).toBeNull(); // the failing step has the details
    expect(row.querySelector('.nbscale-traceback')).toBeNull();
    expect(section.node.querySelector('.nbscale-run-error')!.textContent).toBe('step split failed');
    section.dispose();
    state.dispose();
  });

  it('cancels the run', async () => {
    const { state, api } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', []));
    });
    const section = attach(new RunSection(state));
    await section.cancel();
    expect(api.callsTo('cancelRun')[0].args).toEqual(['iris.ipynb', 'r1']);
    expect(state.run?.status).toBe('cancelled');
    section.dispose();
    state.dispose();
  });

  it('keeps a run cancelled when the cancel answer was sent before the run ended', async () => {
    const { state, api } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', []));
    });
    const section = attach(new RunSection(state));
    // the websocket says "cancelled" while the DELETE's answer (sent when the cancel was asked) says "running"
    api.cancelRun = async () => {
      state.handleEvent({ type: 'run', run_id: 'r1', status: 'cancelled' });
      return summary('r1', 'running');
    };
    await section.cancel();
    expect(state.run?.status).toBe('cancelled');
    const cancel = Array.from(section.node.querySelectorAll('button')).find(b => b.textContent === 'Cancel')!;
    expect(cancel.disabled).toBe(true);
    section.dispose();
    state.dispose();
  });

  it('links a submitted KFP run only through http(s)', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    await section.submitKfp();
    expect((section.node.querySelector('.nbscale-notice a') as HTMLAnchorElement).href).toBe('http://kfp.example/#/runs/details/1');
    api.kfpSubmit = async () => ({ run_url: 'javascript:alert(1)' });
    await section.submitKfp();
    expect(section.node.querySelector('.nbscale-notice a')).toBeNull();
    expect(api.callsTo('kfpSubmit')[0].args[0]).toMatchObject({ path: 'iris.ipynb', experiment: 'Default', parameters: {} });
    section.dispose();
    state.dispose();
  });

  it('reports a server error in one line', async () => {
    const { state, api } = await loaded();
    const section = attach(new RunSection(state));
    api.startRun = async () => {
      throw new Error('409 a run of this notebook is already active');
    };
    await section.run('papermill');
    expect(section.node.querySelector('.nbscale-notice-error')!.textContent).toBe(
      'Could not start the run: 409 a run of this notebook is already active'
    );
    section.dispose();
    state.dispose();
  });
});

describe('Run section: live status', () => {
  it('shows queued apart from running, ticks elapsed time and streams output', async () => {
    const started = new Date(Date.now() - 3000).toISOString();
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', [stepRun('load', 'running', { started })]));
    });
    const section = attach(new RunSection(state));
    state.handleEvent({ type: 'run', run_id: 'r1', payload: { kind: 'cluster_starting' } });
    expect(section.node.querySelector('.nbscale-run-phase')!.textContent).toBe('starting cluster');
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'split', status: 'queued', payload: { kind: 'step_queued' } });
    expect(section.node.querySelector('.nbscale-run-phase')).toBeNull();
    expect(section.node.querySelector('[data-step="split"]')!.getAttribute('data-status')).toBe('queued');
    expect(section.node.querySelector('[data-step="split"] .nbscale-step-status')!.textContent).toBe('queued');
    const elapsed = section.node.querySelector('[data-step="load"] .nbscale-elapsed')!;
    expect(elapsed.textContent).toMatch(/^\d+ s$/);
    section.tick(Date.parse(started) + 7_500);
    expect(elapsed.textContent).toBe('7 s');
    section.tick(Date.parse(started) + 65_000);
    expect(elapsed.textContent).toBe('1 min 5 s');
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'load', payload: { kind: 'step_output', stream: 'stdout', text: 'epoch 1\n' } });
    expect(section.node.querySelector('[data-step="load"] .nbscale-live-output')!.textContent).toContain('epoch 1');
    section.dispose();
    state.dispose();
  });

  it("shows a running step's Dask compute as a small bar of its tasks, gone once the step ends", async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'running')];
      api.details.set('r1', detail('r1', 'running', [stepRun('load', 'running', { started: new Date().toISOString() })]));
    });
    const section = attach(new RunSection(state));
    const compute = () => section.node.querySelector<HTMLElement>('[data-step="load"] .nbscale-compute-progress');
    const count = (done: number, total: number) =>
      state.handleEvent({ type: 'step', run_id: 'r1', step: 'load', payload: { kind: 'step_progress', done, total, what: 'compute' } });
    expect(compute()).toBeNull();
    count(120, 400);
    expect(compute()!.getAttribute('role')).toBe('progressbar');
    expect(compute()!.getAttribute('aria-valuenow')).toBe('30');
    expect(compute()!.querySelector('.nbscale-bar-label')!.textContent).toBe('computing 120/400 tasks');
    expect(compute()!.dataset).toMatchObject({ done: '120', total: '400' });
    count(400, 400);
    expect(compute()!.getAttribute('aria-valuenow')).toBe('100');
    state.handleEvent({ type: 'step', run_id: 'r1', step: 'load', status: 'succeeded', payload: { kind: 'step_finished' } });
    expect(compute()).toBeNull();
    count(10, 400); // a count that comes after its step's end
    expect(compute()).toBeNull();
    section.dispose();
    state.dispose();
  });

  it('shows a cancelled run with how many steps finished, never 100 %', async () => {
    const { state } = await loaded(api => {
      api.runList = [summary('r1', 'cancelled')];
      api.details.set(
        'r1',
        detail('r1', 'cancelled', [
          stepRun('load', 'succeeded'),
          ...['split', 'train_lr', 'train_rf', 'evaluate', 'metrics'].map(n => stepRun(n, 'cancelled'))
        ])
      );
    });
    const section = attach(new RunSection(state));
    expect(section.node.querySelector('.nbscale-progress-count')!.textContent).toBe('1 of 6 steps finished');
    expect(section.node.querySelector('.nbscale-run-progress .nbscale-bar-label')!.textContent).toBe('cancelled: 1/6');
    section.dispose();
    state.dispose();
  });
});

describe('Run buttons and compile errors', () => {
  it('are disabled while the pipeline has an error, their title naming the first one, and enabled once fixed', async () => {
    const error = { severity: 'error', code: 'undefined-name', message: "name 'undefined_thing' is not defined", cell: 4, line: 2, col: 6 };
    const { state, api } = await loaded(a => a.pipelineModel.diagnostics.push(error));
    const section = attach(new RunSection(state));
    const dask = section.node.querySelector('button[data-engine="dask"]') as HTMLButtonElement;
    expect(dask.disabled).toBe(true);
    expect(dask.title).toBe("Fix the pipeline's errors first: cell 5: name 'undefined_thing' is not defined");
    await section.run('dask'); // Enter in the form goes through run(): refused too
    expect(api.callsTo('startRun')).toHaveLength(0);
    // a warning does not block
    api.pipelineModel.diagnostics = [{ ...error, severity: 'warning', code: 'global-seed' }];
    await state.refreshPipeline();
    expect(dask.disabled).toBe(false);
    expect(dask.title).not.toMatch(/Fix the pipeline/); // back to the button's own title
    section.dispose();
    state.dispose();
  });
});
