import { changedParameters, coerceParameter, ParameterForms, parameterKind, parameterText } from '../parameters';
import { irisPipeline } from './fixtures';

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

  it('keeps form values per notebook and follows a changed default', () => {
    const forms = new ParameterForms();
    const seed = (d: unknown, type = 'int') => [{ name: 'seed', type, default: d }, { name: 'C', type: 'float', default: 1 }];
    forms.sync('a.ipynb', seed(42));
    forms.sync('b.ipynb', seed(1));
    forms.set('a.ipynb', 'seed', 7);
    forms.set('a.ipynb', 'C', 0.5);
    expect(forms.values('b.ipynb')).toEqual({ seed: 1, C: 1 });
    expect(forms.values(null)).toEqual({});
    forms.sync('a.ipynb', seed(42)); // a recompile with the same defaults keeps the edits
    expect(forms.values('a.ipynb')).toEqual({ seed: 7, C: 0.5 });
    forms.sync('a.ipynb', seed(3)); // the notebook's seed changed: its value follows
    expect(forms.values('a.ipynb')).toEqual({ seed: 3, C: 0.5 });
    forms.set('a.ipynb', 'seed', 9);
    forms.sync('a.ipynb', seed(3, 'float')); // so does a changed type
    expect(forms.values('a.ipynb').seed).toBe(3);
    forms.reset('a.ipynb', 'C');
    expect(forms.values('a.ipynb')).toEqual({ seed: 3, C: 1 });
    forms.forget('a.ipynb');
    expect(forms.values('a.ipynb')).toEqual({});
  });
});
