import {
  cellLabel,
  cellNumber,
  formatBytes,
  formatDuration,
  formatElapsed,
  formatNumber,
  formatShortTime,
  formatTime,
  hasTraceback,
  kfpYamlFileName,
  secondsSince,
  statusLabel,
  stripAnsi,
  tracebackText
} from '../format';

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

  it('names the exported YAML after the pipeline, with safe characters only', () => {
    expect(kfpYamlFileName('iris')).toBe('iris.yaml');
    expect(kfpYamlFileName('my pipeline/v2')).toBe('my_pipeline_v2.yaml');
    expect(kfpYamlFileName(undefined)).toBe('pipeline.yaml');
  });

  it('labels statuses and tells a traceback from a plain reason', () => {
    expect(statusLabel('upstream_failed')).toBe('upstream failed');
    expect(statusLabel('running')).toBe('running');
    expect(hasTraceback({ cell: 1, line: 1, ename: 'E', evalue: 'v', traceback: ['', ' '] })).toBe(false);
    expect(hasTraceback({ cell: 1, line: 1, ename: 'E', evalue: 'v', traceback: 'Traceback ...' })).toBe(true);
  });

  it('formats times, short ones for today', () => {
    const now = new Date(2026, 10, 28, 15, 0, 0);
    const today = new Date(2026, 10, 28, 9, 5, 7).toISOString();
    const earlier = new Date(2026, 10, 2, 9, 5, 7).toISOString();
    expect(formatTime(today)).toBe('2026-11-28 09:05:07');
    expect(formatShortTime(today, now)).toBe('09:05:07');
    expect(formatShortTime(earlier, now)).toBe('11-02 09:05');
    expect(formatTime('not a time')).toBe('not a time');
    expect(formatTime(null)).toBe('');
    expect(formatShortTime(undefined)).toBe('');
  });
});

describe('elapsed time of a running step', () => {
  it('counts whole seconds from the step start', () => {
    const started = '2026-12-02T00:00:00.000Z';
    const at = (s: number) => Date.parse(started) + s * 1000;
    expect(secondsSince(started, at(7.9))).toBeCloseTo(7.9);
    expect(formatElapsed(secondsSince(started, at(7.9)))).toBe('7 s');
    expect(formatElapsed(secondsSince(started, at(125.4)))).toBe('2 min 5 s');
    expect(secondsSince(started, at(-2))).toBe(0); // a clock a little behind the server's
    expect(secondsSince(null)).toBeNull();
    expect(formatElapsed(null)).toBe('');
  });
});

describe('cell numbers', () => {
  it('numbers a cell from its 0-based index as JupyterLab does, from 1', () => {
    expect(cellNumber(0)).toBe(1);
    expect(cellLabel(0)).toBe('cell 1');
    expect(cellLabel(4, 2)).toBe('cell 5, line 2');
    expect(cellLabel(4, null)).toBe('cell 5');
  });
});
