import { badgeFor, decorateCells, IBadgeCell } from '../badges';
import { stepColour } from '../colours';

function cell(tags?: string[]): IBadgeCell {
  const node = document.createElement('div');
  node.className = 'jp-Cell';
  return { node, model: { getMetadata: (key: string) => (key === 'tags' ? tags : undefined) } };
}

describe('cell badges', () => {
  it('shows the step name in the step colour, with the run status', () => {
    const badge = badgeFor(['step:train_lr'], 'running')!;
    expect(badge.textContent).toBe('train_lr');
    expect(badge.dataset.status).toBe('running');
    expect(badge.style.getPropertyValue('--nbscale-step-colour')).toBe(stepColour('train_lr'));
    expect(badge.querySelector('.nbscale-dot.nbscale-status-running')).not.toBeNull();
  });

  it('shows roles, and nothing for untagged cells', () => {
    expect(badgeFor(['parameters'])!.dataset.role).toBe('parameters');
    expect(badgeFor([])).toBeNull();
    expect(badgeFor(['after:x'])).toBeNull();
  });

  it('decorates cells, updates and removes badges', () => {
    const cells = [cell(['step:load']), cell(['imports']), cell()];
    expect(decorateCells(cells, {})).toBe(2);
    expect(cells[0].node.querySelector('.nbscale-badge')!.textContent).toBe('load');
    expect(cells[0].node.classList.contains('nbscale-tagged')).toBe(true);
    expect(cells[2].node.querySelector('.nbscale-badge')).toBeNull();
    decorateCells(cells, { load: 'succeeded' });
    expect(cells[0].node.querySelectorAll('.nbscale-badge')).toHaveLength(1);
    expect((cells[0].node.querySelector('.nbscale-badge') as HTMLElement).dataset.status).toBe('succeeded');
    decorateCells(cells, {}, false);
    expect(cells[0].node.querySelector('.nbscale-badge')).toBeNull();
    expect(cells[0].node.classList.contains('nbscale-tagged')).toBe(false);
  });

  it('keeps a step name with markup as text', () => {
    const badge = badgeFor(['step:<b>x</b>'])!;
    expect(badge.querySelector('b')).toBeNull();
    expect(badge.textContent).toBe('⚠<b>x</b>'); // and marked: not a valid step name
    expect(badge.classList.contains('nbscale-badge-invalid')).toBe(true);
  });

  it('marks a cell whose tags the compiler refuses, so a skip cell with a step tag does not look fine', () => {
    const badge = badgeFor(['step:explore', 'skip'])!;
    expect(badge.dataset.role).toBe('skip'); // the compiler reads it as skip
    expect(badge.classList.contains('nbscale-badge-invalid')).toBe(true);
    expect(badge.title).toMatch(/'skip' cell cannot carry step tags/);
    expect(badge.querySelector('.nbscale-badge-warning')).not.toBeNull();
    const unknown = badgeFor(['paramters'])!;
    expect(unknown.classList.contains('nbscale-badge-invalid')).toBe(true);
    expect(unknown.dataset.problems).toBe("unknown tag 'paramters'");
    expect(badgeFor(['step:a', 'hide-input'])!.classList.contains('nbscale-badge-invalid')).toBe(false);
    expect(badgeFor(['hide-input'])).toBeNull();
  });
});
