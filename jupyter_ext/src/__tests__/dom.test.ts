import { bar, button, h, safeHref } from '../dom';

describe('dom', () => {
  it('builds text as text, never as HTML', () => {
    const el = h('div', { className: 'x' }, '<b>bold</b>');
    expect(el.innerHTML).toBe('&lt;b&gt;bold&lt;/b&gt;');
    expect(safeHref('javascript:alert(1)')).toBeNull();
  });

  it('makes a labelled progressbar whose value text is what it shows', () => {
    const b = bar(0.426, '1.2 GiB / 4 GiB', 'nbscale-memory', 'Cluster memory');
    expect(b.getAttribute('role')).toBe('progressbar');
    expect(b.getAttribute('aria-label')).toBe('Cluster memory');
    expect(b.getAttribute('aria-valuenow')).toBe('43');
    expect(b.getAttribute('aria-valuemin')).toBe('0');
    expect(b.getAttribute('aria-valuemax')).toBe('100');
    expect(b.getAttribute('aria-valuetext')).toBe('1.2 GiB / 4 GiB');
    expect(b.title).toBe('Cluster memory: 1.2 GiB / 4 GiB');
    expect(bar(2, 'x').getAttribute('aria-valuenow')).toBe('100');
  });

  it("makes JupyterLab's buttons", () => {
    let clicked = 0;
    const run = button('Run', { kind: 'accept', title: 'Run it', onClick: () => clicked++ });
    expect(run.type).toBe('button');
    expect([...run.classList]).toEqual(expect.arrayContaining(['jp-Button', 'jp-mod-styled', 'jp-mod-small', 'jp-mod-accept']));
    expect(run.title).toBe('Run it');
    run.click();
    expect(clicked).toBe(1);
    expect(button('Cancel', { kind: 'warn' }).classList.contains('jp-mod-warn')).toBe(true);
    expect(button('↺', { kind: 'minimal', label: 'Reset seed' }).getAttribute('aria-label')).toBe('Reset seed');
  });
});
