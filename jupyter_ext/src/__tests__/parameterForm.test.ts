import { changedText, defaultText, ParameterForm } from '../parameterForm';
import { RunSection } from '../runSection';
import { PanelState } from '../state';
import { IPipelineModel } from '../wire';
import { attach, FakeApi, flush, irisPipeline } from './fixtures';

afterEach(() => {
  document.body.innerHTML = '';
});

/** A server with one pipeline per notebook (both have `seed`; only train.ipynb has `lr`). */
class TwoNotebooks extends FakeApi {
  models = new Map<string, IPipelineModel>([
    ['iris.ipynb', irisPipeline()],
    [
      'train.ipynb',
      { ...irisPipeline(), name: 'train', parameters: [{ name: 'seed', type: 'int', default: 1 }, { name: 'lr', type: 'float', default: 0.1 }] }
    ]
  ]);
  async pipeline(path: string) {
    await super.pipeline(path);
    return JSON.parse(JSON.stringify(this.models.get(path)));
  }
}

function form() {
  const api = new TwoNotebooks();
  const state = new PanelState({ api });
  const f = new ParameterForm(state, () => undefined);
  state.changed.connect((_, part) => {
    if (part === 'path' || part === 'pipeline' || part === 'parameters') {
      f.render();
    }
  });
  document.body.appendChild(f.node);
  const input = (name: string) => f.node.querySelector(`input[name="${name}"]`) as HTMLInputElement;
  const field = (name: string) => f.node.querySelector(`.nbscale-field[data-param="${name}"]`) as HTMLElement;
  const type = (name: string, text: string) => {
    input(name).value = text;
    input(name).dispatchEvent(new Event('input'));
  };
  return { api, state, f, input, field, type };
}

describe('parameter form', () => {
  it('keeps values per notebook: a value set in one never shows in, or runs with, another', async () => {
    const { api, state, input, type } = form();
    await state.setPath('iris.ipynb');
    type('seed', '7');
    await state.setPath('train.ipynb');
    expect(input('seed').value).toBe('1');
    expect(state.sentParameters).toEqual({});
    await state.startRun('dask');
    expect(api.callsTo('startRun')[0].args[0]).toMatchObject({ path: 'train.ipynb', parameters: {} });
    type('lr', '0.5');
    await state.setPath('iris.ipynb');
    expect(input('seed').value).toBe('7'); // the first notebook's edit is still its own
    expect(state.sentParameters).toEqual({ seed: 7 });
    state.dispose();
  });

  it('marks a changed value visibly and for screen readers, and resets it alone', async () => {
    const { state, input, field, type, f } = form();
    await state.setPath('iris.ipynb');
    expect(field('seed').dataset.changed).toBe('false');
    expect(f.node.querySelector('.nbscale-changed')).toBeNull();
    type('seed', '7');
    type('C', '0.5');
    const mark = document.getElementById(input('seed').getAttribute('aria-describedby')!.split(' ')[0])!;
    expect(field('seed').classList.contains('nbscale-changed')).toBe(true);
    expect(mark.textContent).toBe('changed · notebook: 42');
    expect(f.node.querySelector('.nbscale-changed-count')!.textContent).toBe('2 changed from the notebook');
    const reset = field('seed').querySelector('.nbscale-param-reset') as HTMLButtonElement;
    expect(reset.hidden).toBe(false);
    expect(reset.getAttribute('aria-label')).toBe("Reset seed to the notebook's value 42");
    reset.click();
    expect(input('seed').value).toBe('42');
    expect(document.activeElement).toBe(input('seed'));
    expect(field('seed').dataset.changed).toBe('false');
    expect(input('C').value).toBe('0.5'); // only that value went back
    expect(state.sentParameters).toEqual({ C: 0.5 });
    type('C', '1');
    expect(field('C').dataset.changed).toBe('false'); // typing the default back clears the mark
    state.dispose();
  });

  it("resets a value when the notebook's default for it changes, and keeps the other edits", async () => {
    const { api, state, input, type } = form();
    await state.setPath('iris.ipynb');
    type('seed', '7');
    type('C', '0.5');
    api.models.get('iris.ipynb')!.parameters.find(p => p.name === 'seed')!.default = 3;
    await state.refreshPipeline();
    expect(input('seed').value).toBe('3');
    expect(input('C').value).toBe('0.5');
    expect(state.sentParameters).toEqual({ C: 0.5 });
    state.dispose();
  });

  it('gives every input an accessible name and says what a default is', async () => {
    const { state, f } = form();
    await state.setPath('iris.ipynb');
    for (const input of Array.from(f.node.querySelectorAll('input'))) {
      const label = f.node.querySelector(`label[for="${input.id}"]`);
      expect(label?.textContent).toContain(input.name);
    }
    expect(defaultText({ name: 's', type: 'str', default: '' })).toBe("''");
    expect(changedText({ name: 'xs', type: 'list', default: [1, 2] })).toBe('changed · notebook: [1,2]');
    state.dispose();
  });
});

describe('run form in the Run section', () => {
  it('uses JupyterLab buttons and sends the followed notebook values only', async () => {
    const api = new TwoNotebooks();
    const state = new PanelState({ api });
    await state.setPath('iris.ipynb');
    const section = attach(new RunSection(state));
    const seed = section.node.querySelector('input[name="seed"]') as HTMLInputElement;
    seed.value = '7';
    seed.dispatchEvent(new Event('input'));
    await state.setPath('train.ipynb');
    const dask = section.node.querySelector('button[data-engine="dask"]') as HTMLButtonElement;
    expect(dask.classList.contains('jp-Button')).toBe(true);
    expect(dask.classList.contains('jp-mod-accept')).toBe(true);
    dask.click();
    await flush();
    expect(api.callsTo('startRun')[0].args[0]).toMatchObject({ path: 'train.ipynb', parameters: {} });
    section.dispose();
    state.dispose();
  });
});
