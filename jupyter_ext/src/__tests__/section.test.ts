import { Section } from '../section';
import { PanelState, Part } from '../state';
import { attach, FakeApi } from './fixtures';

class Plain extends Section {
  renders: Part[] = [];
  protected render(part: Part): void {
    this.renders.push(part);
  }
}

afterEach(() => {
  document.body.innerHTML = '';
});

describe('section', () => {
  it('follows the accordion pattern: a heading button folds a region it names', () => {
    const state = new PanelState({ api: new FakeApi() });
    const section = attach(new Plain(state, 'Run', ['run']));
    const toggle = section.node.querySelector('h3 > button') as HTMLButtonElement;
    const body = section.body;
    expect(toggle.getAttribute('aria-controls')).toBe(body.id);
    expect(body.getAttribute('role')).toBe('region');
    expect(body.getAttribute('aria-labelledby')).toBe(toggle.id);
    expect(toggle.getAttribute('aria-expanded')).toBe('true');
    toggle.click();
    expect(section.collapsed).toBe(true);
    expect(toggle.getAttribute('aria-expanded')).toBe('false');
    section.setExtra('failed · 2/6 steps finished');
    const extra = section.node.querySelector('.nbscale-section-extra') as HTMLElement;
    expect(extra.title).toBe('failed · 2/6 steps finished'); // it may ellipsize
    section.dispose();
    state.dispose();
  });
});
