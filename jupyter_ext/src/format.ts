/**
 * Text the panel shows for values from the server: durations, bytes, numbers, times, status
 * labels, tracebacks (without terminal colours), the elapsed time of a running step, and the file
 * name of an exported pipeline.
 */
import { IStepError } from './wire';

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  if (m < 60) {
    return `${m} min ${s} s`;
  }
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined || !isFinite(bytes)) {
    return '–';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u += 1;
  }
  return `${u === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
}

export function formatNumber(value: unknown): string {
  if (typeof value !== 'number' || !isFinite(value)) {
    return String(value ?? '–');
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) {
    return value.toExponential(3);
  }
  return value.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/** A date from an ISO timestamp, or null when there is none or it does not parse. */
function parseTime(iso: string | null | undefined): Date | null {
  if (!iso) {
    return null;
  }
  const d = new Date(iso);
  return isNaN(d.getTime()) ? null : d;
}

/** A short local time for a run's ISO timestamp. */
export function formatTime(iso: string | null | undefined): string {
  const d = parseTime(iso);
  if (!d) {
    return iso ?? '';
  }
  const date = `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}`;
  return `${date} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}

/** A compact time for narrow tables: the time of day for today's runs, else month-day and time. */
export function formatShortTime(iso: string | null | undefined, now: Date = new Date()): string {
  const d = parseTime(iso);
  if (!d) {
    return iso ?? '';
  }
  const time = `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  if (d.toDateString() === now.toDateString()) {
    return time;
  }
  return `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${time.slice(0, 5)}`;
}

/** The short label a status shows with. */
export function statusLabel(status: string): string {
  return status === 'upstream_failed' ? 'upstream failed' : status;
}

/** Terminal colour codes in tracebacks (IPython's) would show as garbage in a <pre>. */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;?]*[ -/]*[@-~]/g, '').replace(/\u001b[@-_]/g, '');
}

function rawTraceback(error: IStepError): string {
  return Array.isArray(error.traceback) ? error.traceback.join('\n') : error.traceback ?? '';
}

/** Whether a step error carries a traceback (a plain reason such as "upstream failed: a" does not). */
export function hasTraceback(error: IStepError): boolean {
  return !!rawTraceback(error).trim();
}

export function tracebackText(error: IStepError | null | undefined): string {
  if (!error) {
    return '';
  }
  const text = stripAnsi(rawTraceback(error)).trim();
  if (text) {
    return text;
  }
  return errorTitle(error);
}

/** `ename: evalue`, or the plain reason (`upstream failed: a`) a step error may be. */
export function errorTitle(error: IStepError): string {
  const evalue = stripAnsi(String(error.evalue ?? ''));
  return error.ename ? `${error.ename}: ${evalue}` : evalue;
}

/** The file an exported pipeline downloads as: its name, with only file-name-safe characters. */
export function kfpYamlFileName(pipelineName: string | null | undefined): string {
  return `${(pipelineName ?? 'pipeline').replace(/[^A-Za-z0-9_.-]/g, '_')}.yaml`;
}

/**
 * The number JupyterLab shows for the cell at 0-based `index` (its status bar's "Cell N/M", which
 * counts markdown cells too). The server's models keep the index; only text shows the number.
 */
export function cellNumber(index: number): number {
  return index + 1;
}

/** "cell 5", or "cell 5, line 2": how the panel names the cell at 0-based `index` (as the CLI does). */
export function cellLabel(index: number, line?: number | null): string {
  const label = `cell ${cellNumber(index)}`;
  return line ? `${label}, line ${line}` : label;
}

/** Seconds from an ISO timestamp to `now` (a running step's elapsed time); null without one. */
export function secondsSince(iso: string | null | undefined, now: number = Date.now()): number | null {
  const d = parseTime(iso);
  return d ? Math.max(0, (now - d.getTime()) / 1000) : null;
}

/** A running step's elapsed time, in whole seconds so that it ticks calmly: "7 s", "2 min 5 s". */
export function formatElapsed(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  return seconds < 60 ? `${Math.floor(seconds)} s` : formatDuration(Math.floor(seconds));
}
