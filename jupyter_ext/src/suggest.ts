/**
 * Suggested steps for the open notebook: the proposal's dialog body (steps with their cells
 * numbered from 1, the roles, the expected speed-up) and applying its tags to the notebook's
 * cells, refused once the code cells differ from the sources the proposal was made from.
 * Everything here works on small interfaces, so jest can load it; suggestCommand.ts is the glue.
 */
// type-only: the dialog functions come in as an argument, so jest can load this module
import type { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { h } from './dom';

/** GET /nbscale/api/notebooks/suggest (jupyter_ext/suggestions.py; docs/api.md). */
export interface ISuggestion {
  path: string;
  steps: { name: string; cells: number[]; seconds: number; after: string[] }[];
  /** cell index → role given to a cell that had none (imports, functions, parameters) */
  roles: Record<string, string>;
  /** code cell index → its tags as proposed */
  tags: Record<string, string[]>;
  /** given (the last run), notebook (its execution metadata) or estimate */
  durations: string;
  total: number;
  critical_path: number;
  speedup: number;
  notes: string[];
  /** how many cells (of every type) the notebook had, and each code cell's source */
  cell_count: number;
  sources: Record<string, string>;
}

/** What applying needs of a notebook cell (a JupyterLab ICellModel fits through `modelCell`). */
export interface ISuggestCell {
  type: string;
  source: string;
  setTags(tags: string[]): void;
}

const DURATIONS: Record<string, string> = {
  given: 'the last successful run',
  notebook: "the notebook's execution metadata",
  estimate: 'an estimate: fits, reads and loops weigh 1, other cells 0.1'
};

/** "cells 3, 4" for 0-based indices, numbered as JupyterLab numbers cells. */
export function cellNumbers(cells: readonly number[]): string {
  return `${cells.length === 1 ? 'cell' : 'cells'} ${cells.map(c => c + 1).join(', ')}`;
}

/** The expected speed-up line: critical path against the sum of the steps' times. */
export function speedupText(s: ISuggestion): string {
  const unit = s.durations === 'estimate' ? ' units' : ' s';
  return (
    `Critical path ${s.critical_path.toFixed(2)} of ${s.total.toFixed(2)}${unit} in all: ` +
    `expected speed-up ${s.speedup.toFixed(2)}× with enough workers`
  );
}

/**
 * Why the proposal no longer fits these cells (a code cell added, removed, moved or edited since
 * it was made), or null when it does.
 */
export function staleReason(s: ISuggestion, cells: readonly Pick<ISuggestCell, 'type' | 'source'>[]): string | null {
  const again = 'Save the notebook and suggest steps again.';
  if (cells.length !== s.cell_count) {
    return `The notebook has ${cells.length} cells; the proposal was made for ${s.cell_count}. ${again}`;
  }
  for (let i = 0; i < cells.length; i++) {
    const planned = Object.prototype.hasOwnProperty.call(s.sources, String(i)) ? s.sources[String(i)] : null;
    const isCode = cells[i].type === 'code';
    if ((planned === null) === isCode || (isCode && cells[i].source !== planned)) {
      return `Cell ${i + 1} differs from the code the proposal was made from. ${again}`;
    }
  }
  return null;
}

/** Write the proposed tags into the cells; throws (and changes nothing) when they are stale. */
export function applySuggestion(s: ISuggestion, cells: readonly ISuggestCell[]): number {
  const reason = staleReason(s, cells);
  if (reason) {
    throw new Error(reason);
  }
  let written = 0;
  for (const [index, tags] of Object.entries(s.tags)) {
    const cell = cells[Number(index)];
    if (cell && Array.isArray(tags)) {
      cell.setTags(tags.map(String));
      written++;
    }
  }
  return written;
}

/** The dialog's body: the steps table, the roles, the speed-up, notes, and why Apply is refused. */
export function suggestionBody(s: ISuggestion, stale: string | null = null): HTMLElement {
  const rows = s.steps.map(step =>
    h(
      'tr',
      { className: 'nbscale-suggest-step', 'data-step': step.name },
      h('td', { className: 'nbscale-suggest-name' }, step.name),
      h('td', {}, cellNumbers(step.cells)),
      h('td', { className: 'nbscale-num' }, step.seconds.toFixed(2)),
      h('td', {}, step.after.join(', ') || '–')
    )
  );
  const roles = Object.entries(s.roles)
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([cell, role]) => h('li', { 'data-cell': Number(cell) + 1 }, `Cell ${Number(cell) + 1} becomes '${role}'`));
  const unit = s.durations === 'estimate' ? 'units' : 's';
  return h(
    'div',
    { className: 'nbscale-suggest' },
    h('p', {}, `${s.steps.length} steps proposed for ${s.path} (cell times from ${DURATIONS[s.durations] ?? s.durations}).`),
    h(
      'table',
      { className: 'nbscale-table nbscale-suggest-steps' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Step'), h('th', {}, 'Cells'), h('th', { className: 'nbscale-num' }, `Time (${unit})`), h('th', {}, 'After'))),
      h('tbody', {}, ...rows)
    ),
    roles.length ? h('ul', { className: 'nbscale-suggest-roles' }, ...roles) : null,
    h('p', { className: 'nbscale-suggest-speedup' }, speedupText(s)),
    s.notes.length ? h('ul', { className: 'nbscale-suggest-notes nbscale-muted' }, ...s.notes.map(n => h('li', {}, n))) : null,
    stale ? h('p', { className: 'nbscale-suggest-stale jp-mod-error', role: 'alert' }, stale) : null
  );
}

/** JupyterLab's dialog functions (from @jupyterlab/apputils). */
export interface IDialogs {
  showDialog: typeof showDialog;
  Dialog: typeof Dialog;
}

/**
 * Show the proposal; on Apply, write its tags into the cells `cells()` returns at that moment,
 * inside `transact` (one change to undo). Resolves with the number of cells written, or null
 * when cancelled; throws when stale.
 */
export async function showSuggestion(
  s: ISuggestion,
  cells: () => ISuggestCell[],
  dialogs: IDialogs,
  transact: (change: () => void) => void = change => change()
): Promise<number | null> {
  const { showDialog, Dialog } = dialogs;
  const result = await showDialog({
    title: 'Suggested pipeline steps',
    body: new Widget({ node: suggestionBody(s, staleReason(s, cells())) }),
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Apply' })]
  });
  if (!result.button.accept) {
    return null;
  }
  let written = 0;
  const now = cells();
  const reason = staleReason(s, now);
  if (reason) {
    throw new Error(reason);
  }
  transact(() => {
    written = applySuggestion(s, now);
  });
  return written;
}
