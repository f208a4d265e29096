import { roleOfTags, stepOfTags, validateStepName, withStepTag } from '../tags';

describe('step tags', () => {
  it('reads the step a cell starts, in nbscale and Kale spellings', () => {
    expect(stepOfTags(['step:train', 'after:load'])).toBe('train');
    expect(stepOfTags(['block:load'])).toBe('load');
    expect(stepOfTags(['imports'])).toBeNull();
    expect(stepOfTags(undefined)).toBeNull();
    expect(stepOfTags(['step:'])).toBeNull();
  });

  it('reads roles', () => {
    expect(roleOfTags(['parameters'])).toBe('parameters');
    expect(roleOfTags(['pipeline-metrics'])).toBe('metrics');
    expect(roleOfTags(['skip'])).toBe('skip');
    expect(roleOfTags(['after:x'])).toBeNull();
  });

  it('sets, changes and removes the step tag, keeping other tags in place', () => {
    expect(withStepTag([], 'load')).toEqual(['step:load']);
    expect(withStepTag(['resources:cpu=1', 'step:a', 'after:z'], 'b')).toEqual(['resources:cpu=1', 'step:b', 'after:z']);
    expect(withStepTag(['block:a', 'step:b'], 'c')).toEqual(['step:c']);
    expect(withStepTag(['step:a', 'skip'], '')).toEqual(['skip']);
    expect(withStepTag(['after:x'], ' train ')).toEqual(['step:train', 'after:x']);
  });

  it('refuses names the compiler would refuse', () => {
    expect(validateStepName('train_2')).toBeNull();
    expect(validateStepName('')).toBeNull();
    expect(validateStepName('2train')).toMatch(/starts with a letter/);
    expect(validateStepName('a b')).toMatch(/letters, digits/);
    expect(() => withStepTag([], 'a:b')).toThrow();
  });
});
