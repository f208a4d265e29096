/**
 * Coloured badges on tagged cells: the step a cell starts (in the step's colour, with the
 * shown run's status), or its pipeline role (imports, parameters, metrics, skip); marked with
 * a warning when the compiler would refuse the cell's tags (a step tag on a skip cell, ...).
 */
import { stepColour } from './colours';
import { h } from './dom';
import { statusLabel } from './format';
import { stepStatuses } from './reducers';
import { PanelState } from './state';
import { roleOfTags, stepOfTags, tagProblems } from './tags';

export const BADGE_CLASS = 'nbscale-badge';

/** The badge for a cell's tags, or null when the cell has no pipeline tag. */
export function badgeFor(
  tags: readonly string[] | null | undefined,
  status?: string | null,
  order?: readonly string[]
): HTMLElement | null {
  const badge = plainBadge(tags, status, order);
  const problems = tagProblems(tags);
  if (!problems.length) {
    return badge;
  }
  // tags the compiler refuses: mark the badge (or show one), so the cell does not look fine
  const marked = badge ?? h('div', { className: `${BADGE_CLASS} nbscale-badge-role`, 'data-role': '' }, 'tags');
  marked.classList.add('nbscale-badge-invalid');
  marked.dataset.problems = problems.join('\n');
  marked.title = `${marked.title ? `${marked.title}\n` : ''}The compiler refuses these tags:\n${problems.join('\n')}`;
  marked.prepend(h('span', { className: 'nbscale-badge-warning', 'aria-label': 'invalid tags' }, '⚠'));
  return marked;
}

function plainBadge(
  tags: readonly string[] | null | undefined,
  status?: string | null,
  order?: readonly string[]
): HTMLElement | null {
  const step = stepOfTags(tags);
  if (step) {
    const badge = h(
      'div',
      {
        className: `${BADGE_CLASS} nbscale-badge-step${status ? ` nbscale-status-${status}` : ''}`,
        'data-step': step,
        'data-status': status ?? '',
        title: `pipeline step ${step}${status ? `: ${statusLabel(status)}` : ''}`
      },
      status ? h('span', { className: `nbscale-dot nbscale-status-${status}` }) : null,
      step
    );
    badge.style.setProperty('--nbscale-step-colour', stepColour(step, order));
    return badge;
  }
  const role = roleOfTags(tags);
  if (role) {
    return h('div', { className: `${BADGE_CLASS} nbscale-badge-role`, 'data-role': role, title: `pipeline ${role}` }, role);
  }
  return null;
}

/** What the badges need from a cell widget (a JupyterLab Cell satisfies it). */
export interface IBadgeCell {
  node: HTMLElement;
  model: { getMetadata(key: string): any };
}

/** Put the right badge on each cell (replacing a stale one). */
export function decorateCells(
  cells: readonly IBadgeCell[],
  statuses: Record<string, string>,
  enabled = true,
  order?: readonly string[]
): number {
  let count = 0;
  for (const cell of cells) {
    const old = cell.node.querySelector(`:scope > .${BADGE_CLASS}`);
    const tags = enabled ? (cell.model.getMetadata('tags') as string[] | undefined) : undefined;
    const step = stepOfTags(tags);
    const badge = enabled ? badgeFor(tags, step ? statuses[step] : null, order) : null;
    if (old && badge && old.outerHTML === badge.outerHTML) {
      count += 1;
      continue;
    }
    old?.remove();
    cell.node.classList.toggle('nbscale-tagged', !!badge);
    if (badge) {
      cell.node.appendChild(badge);
      count += 1;
    }
  }
  return count;
}

/** The pipeline's step order, when the state follows this notebook (for the colours). */
export function stepOrderFor(state: PanelState, path: string): string[] | undefined {
  return state.path === path ? state.pipeline?.steps.map(s => s.name) : undefined;
}

/** The shown run's status per step, when the state follows this notebook. */
export function statusesFor(state: PanelState, path: string): Record<string, string> {
  return state.path === path ? stepStatuses(state.pipeline, state.run) : {};
}
