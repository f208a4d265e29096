/**
 * Pipeline parameters in the Run form: which input a parameter gets, the text it shows, the
 * typed value typed text means (or one clear line saying why it is not one), and which values
 * a run is sent (only those that differ from the notebook's).
 */
import { IParameter } from './wire';

export type ParameterKind = 'int' | 'float' | 'bool' | 'str' | 'json';

export function parameterKind(p: IParameter): ParameterKind {
  const t = (p.type || '').toLowerCase();
  if (t === 'int' || t === 'integer') {
    return 'int';
  }
  if (t === 'float' || t === 'number') {
    return 'float';
  }
  if (t === 'bool' || t === 'boolean') {
    return 'bool';
  }
  if (t === 'str' || t === 'string') {
    return 'str';
  }
  // lists, dicts, None: edited as JSON
  return 'json';
}

/** The text an input shows for a parameter value. */
export function parameterText(kind: ParameterKind, value: unknown): string {
  if (kind === 'json') {
    return JSON.stringify(value ?? null);
  }
  return value === null || value === undefined ? '' : String(value);
}

function coerceBool(text: string | boolean, name: string): boolean {
  if (typeof text === 'boolean') {
    return text;
  }
  const t = text.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(t)) {
    return true;
  }
  if (['false', '0', 'no', 'off', ''].includes(t)) {
    return false;
  }
  throw new Error(`${name}: expected true or false, got "${text}"`);
}

function coerceInt(s: string, name: string): number {
  const t = s.trim();
  if (!/^[-+]?\d+$/.test(t)) {
    throw new Error(`${name}: expected an integer, got "${s}"`);
  }
  return parseInt(t, 10);
}

function coerceFloat(s: string, name: string): number {
  const t = s.trim();
  const v = Number(t);
  if (t === '' || !isFinite(v)) {
    throw new Error(`${name}: expected a number, got "${s}"`);
  }
  return v;
}

function coerceJson(s: string, name: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    throw new Error(`${name}: expected a JSON value, got "${s}"`);
  }
}

/**
 * Turn an input's text back into a typed value. Throws an Error with one clear line when the
 * text is not a value of the parameter's type.
 */
export function coerceParameter(kind: ParameterKind, text: string | boolean, name = 'value'): unknown {
  if (kind === 'bool') {
    return coerceBool(text, name);
  }
  const s = String(text);
  switch (kind) {
    case 'str':
      return s;
    case 'int':
      return coerceInt(s, name);
    case 'float':
      return coerceFloat(s, name);
    default:
      return coerceJson(s, name);
  }
}

/** Only the parameters whose value differs from the notebook's default are sent. */
export function changedParameters(
  parameters: IParameter[],
  values: Record<string, unknown>
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const p of parameters) {
    if (!(p.name in values)) {
      continue;
    }
    if (JSON.stringify(values[p.name]) !== JSON.stringify(p.default)) {
      out[p.name] = values[p.name];
    }
  }
  return out;
}
