import {
  applyEvent,
  bestRun,
  changedParameters,
  coerceParameter,
  formatBytes,
  formatDuration,
  formatNumber,
  isFinished,
  mergeDetail,
  mergeSteps,
  metricDirection,
  metricSeries,
  parameterKind,
  parameterText,
  progress,
  stepColour,
  STEP_COLOURS,
  stripAnsi,
  tracebackText
} from '../models';
import { detail, history, irisPipeline, stepRun } from './fixtures';

describe('run progress', () => {
  it('counts finished steps against the pipeline', () => {
    const p = progress([stepRun('a', 'succeeded'), stepRun('b', 'cached'), stepRun('c', 'running'), stepRun('d', 'failed')], 6);
    expect(p).toEqual({ done: 3, total: 6, failed: 1, running: 1, fraction: 0.5 });
  });

  it('is empty without steps', () => {
    expect(progress([])).toEqual({ done: 0, total: 0, failed: 0, running: 0, fraction: 0 });
  });

  it('knows which statuses are final', () => {
    expect(['succeeded', 'failed', 'cached', 'upstream_failed', 'cancelled'].every(isFinished)).toBe(true);
    expect(isFinished('running')).toBe(false);
    expect(isFinished('pending')).toBe(false);
    expect(isFinished(undefined)).toBe(false);
  });

  it('lists every pipeline step in order, pending until reported', () => {
    const run = detail('r', 'running', [stepRun('split', 'running'), stepRun('load', 'succeeded')]);
    const steps = mergeSteps(irisPipeline(), run);
    expect(steps.map(s => s.name)).toEqual(['load', 'split', 'train_lr', 'train_rf', 'evaluate', 'metrics']);
    expect(steps.map(s => s.status)).toEqual(['succeeded', 'running', 'pending', 'pending', 'pending', 'pending']);
  });

  it('keeps steps the pipeline no longer has (the notebook changed since the run)', () => {
    const run = detail('r', 'succeeded', [stepRun('old', 'succeeded')]);
    expect(mergeSteps(irisPipeline(), run).map(s => s.name)).toContain('old');
  });
});

describe('live events', () => {
  const run = detail('r1', 'running', [stepRun('load', 'running')]);

  it('sets a step status from a step event, with the payload timestamps', () => {
    const next = applyEvent(run, {
      type: 'step',
      run_id: 'r1',
      step: 'load',
      status: 'succeeded',
      payload: { finished: '2026-01-01T00:00:01+00:00', duration_s: 1.5 }
    });
    expect(next).not.toBe(run);
    expect(next.steps[0]).toMatchObject({ status: 'succeeded', duration_s: 1.5, finished: '2026-01-01T00:00:01+00:00' });
    expect(run.steps[0].status).toBe('running'); // not mutated
  });

  it('adds a step it has not seen', () => {
    const next = applyEvent(run, { type: 'step', run_id: 'r1', step: 'split', status: 'running' });
    expect(next.steps.map(s => s.name)).toEqual(['load', 'split']);
  });

  it('marks cached steps', () => {
    const next = applyEvent(run, { type: 'step', run_id: 'r1', step: 'load', status: 'cached' });
    expect(next.steps[0].cached).toBe(true);
  });

  it('ignores events of other runs and events that change nothing', () => {
    expect(applyEvent(run, { type: 'step', run_id: 'other', step: 'load', status: 'failed' })).toBe(run);
    expect(applyEvent(run, { type: 'step', run_id: 'r1', step: 'load', status: 'running' })).toBe(run);
    expect(applyEvent(run, { type: 'cluster', payload: {} })).toBe(run);
  });

  it('sets the run status from a run event', () => {
    expect(applyEvent(run, { type: 'run', run_id: 'r1', status: 'succeeded' }).status).toBe('succeeded');
  });

  it('never moves a step back when a stale fetch arrives after an event', () => {
    const shown = detail('r1', 'running', [stepRun('load', 'succeeded'), stepRun('split', 'running')]);
    const fetched = detail('r1', 'running', [stepRun('load', 'running'), stepRun('split', 'succeeded', { duration_s: 2 })]);
    const merged = mergeDetail(shown, fetched);
    expect(merged.steps.map(s => s.status)).toEqual(['succeeded', 'succeeded']);
    expect(merged.steps[1].duration_s).toBe(2);
    // another run replaces
    expect(mergeDetail(shown, detail('r2', 'pending', []))).toEqual(detail('r2', 'pending', []));
  });
});

describe('formatting', () => {
  it('formats durations', () => {
    expect(formatDuration(null)).toBe('');
    expect(formatDuration(0.0123)).toBe('12 ms');
    expect(formatDuration(1.234)).toBe('1.23 s');
    expect(formatDuration(42.25)).toBe('42.3 s');
    expect(formatDuration(125)).toBe('2 min 5 s');
    expect(formatDuration(7300)).toBe('2 h 1 min');
  });

  it('formats bytes', () => {
    expect(formatBytes(undefined)).toBe('–');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(4 * 2 ** 30)).toBe('4.00 GiB');
    expect(formatBytes(200 * 2 ** 20)).toBe('200.0 MiB');
  });

  it('formats numbers', () => {
    expect(formatNumber(0.9736842105)).toBe('0.9737');
    expect(formatNumber(1)).toBe('1');
    expect(formatNumber(0.5)).toBe('0.5');
    expect(formatNumber(1e-7)).toBe('1.000e-7');
    expect(formatNumber(null)).toBe('–');
  });

  it('strips terminal colours from tracebacks and falls back to ename: evalue', () => {
    expect(stripAnsi('\u001b[0;31mValueError\u001b[0m: bad')).toBe('ValueError: bad');
    expect(tracebackText({ cell: 1, line: 2, ename: 'KeyError', evalue: "'x'", traceback: [] })).toBe("KeyError: 'x'");
    expect(tracebackText({ cell: 1, line: 2, ename: 'E', evalue: 'v', traceback: ['a', '\u001b[31mb\u001b[0m'] })).toBe('a\nb');
    expect(tracebackText(null)).toBe('');
    expect(tracebackText({ cell: null, line: null, ename: '', evalue: 'upstream failed: a', traceback: '' })).toBe(
      'upstream failed: a'
    );
  });
});

describe('parameters', () => {
  it('picks an input kind by type', () => {
    const kind = (type: string) => parameterKind({ name: 'x', type, default: null });
    expect(['int', 'float', 'bool', 'str', 'list', 'dict', 'NoneType'].map(kind)).toEqual([
      'int',
      'float',
      'bool',
      'str',
      'json',
      'json',
      'json'
    ]);
  });

  it('coerces typed values and refuses wrong ones with one clear line', () => {
    expect(coerceParameter('int', ' 42 ')).toBe(42);
    expect(() => coerceParameter('int', '4.5', 'seed')).toThrow('seed: expected an integer, got "4.5"');
    expect(coerceParameter('float', '0.25')).toBe(0.25);
    expect(coerceParameter('float', '1e-3')).toBe(0.001);
    expect(() => coerceParameter('float', 'abc', 'C')).toThrow('C: expected a number');
    expect(() => coerceParameter('float', '', 'C')).toThrow('C: expected a number');
    expect(coerceParameter('bool', true)).toBe(true);
    expect(coerceParameter('bool', 'no')).toBe(false);
    expect(coerceParameter('str', "it's \"quoted\"")).toBe("it's \"quoted\"");
    expect(coerceParameter('json', '[1, {"a": null}]')).toEqual([1, { a: null }]);
    expect(() => coerceParameter('json', '[1,', 'xs')).toThrow('xs: expected a JSON value');
  });

  it('shows values as text and round-trips them', () => {
    expect(parameterText('json', [1, 2])).toBe('[1,2]');
    expect(parameterText('json', null)).toBe('null');
    expect(parameterText('float', 0.25)).toBe('0.25');
    expect(coerceParameter('json', parameterText('json', { a: [1] }))).toEqual({ a: [1] });
  });

  it('sends only the parameters that differ from the notebook', () => {
    const params = irisPipeline().parameters;
    expect(changedParameters(params, { test_size: 0.25, seed: 7, C: 1.0 })).toEqual({ seed: 7 });
  });
});

describe('metrics', () => {
  it('maximises scores and minimises losses unless told otherwise', () => {
    expect(metricDirection('accuracy')).toBe('max');
    expect(metricDirection('val_loss')).toBe('min');
    expect(metricDirection('rmse')).toBe('min');
    expect(metricDirection('accuracy', { accuracy: 'min' })).toBe('min');
  });

  it('finds the best run (earliest on ties)', () => {
    const h = history();
    expect(bestRun(h, 'acc_lr')).toBe('r2');
    expect(bestRun(h, 'acc_rf')).toBe('r1'); // r1 and r3 tie at 0.97; r1 came first
    expect(bestRun(h, 'acc_lr', 'min')).toBe('r1');
    expect(bestRun(h, 'missing')).toBeNull();
  });

  it('orders a series oldest first and skips runs without the metric', () => {
    const h = history();
    h.runs.push({ run_id: 'r0', created: '2026-11-28T09:00:00+00:00', status: 'failed', metrics: {} });
    expect(metricSeries(h, 'acc_lr').map(p => p.run_id)).toEqual(['r1', 'r2', 'r3']);
  });
});

describe('colours', () => {
  it('gives a step the same colour every time, from the palette', () => {
    expect(stepColour('train')).toBe(stepColour('train'));
    expect(STEP_COLOURS).toContain(stepColour('evaluate'));
    const names = ['load', 'split', 'train_lr', 'train_rf', 'evaluate', 'metrics'];
    expect(new Set(names.map(n => stepColour(n))).size).toBeGreaterThan(2);
    // with the pipeline's order, up to ten steps get distinct colours
    expect(new Set(names.map(n => stepColour(n, names))).size).toBe(6);
    expect(stepColour('unknown', names)).toBe(stepColour('unknown'));
  });
});
