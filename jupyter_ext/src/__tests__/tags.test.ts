import {
  defaultStepName,
  hasStepOptions,
  layoutSteps,
  parseDuration,
  parseTags,
  Role,
  ROLES,
  roleOfTags,
  stepConflicts,
  stepOfTags,
  tagProblems,
  tagsOf,
  validateModel,
  validateStepName,
  withRole,
  withStepTag
} from '../tags';

describe('step tags', () => {
  it('reads the step a cell starts, in nbscale and Kale spellings', () => {
    expect(stepOfTags(['step:train', 'after:load'])).toBe('train');
    expect(stepOfTags(['block:load'])).toBe('load');
    expect(stepOfTags(['imports'])).toBeNull();
    expect(stepOfTags(undefined)).toBeNull();
    expect(stepOfTags(['step:'])).toBeNull();
    // the compiler reads a skip cell as skip, whatever step tag it carries
    expect(stepOfTags(['step:x', 'skip'])).toBeNull();
    expect(stepOfTags(['metrics', 'step:scores'])).toBe('scores');
  });

  it('reads roles', () => {
    expect(roleOfTags(['parameters'])).toBe('parameters');
    expect(roleOfTags(['pipeline-metrics'])).toBe('metrics');
    expect(roleOfTags(['skip'])).toBe('skip');
    expect(roleOfTags(['after:x'])).toBeNull();
    expect(roleOfTags(['step:x'])).toBeNull();
  });

  it('sets, changes and removes the step tag, keeping other tools\' tags', () => {
    expect(withStepTag([], 'load')).toEqual(['step:load']);
    expect(withStepTag(['resources:cpu=1', 'step:a', 'after:z'], 'b')).toEqual(['step:b', 'after:z', 'resources:cpu=1']);
    expect(withStepTag(['block:a', 'step:b'], 'c')).toEqual(['step:c']);
    expect(withStepTag(['step:a', 'hide-input'], '')).toEqual(['hide-input']);
    expect(withStepTag(['after:x'], ' train ')).toEqual(['step:train', 'after:x']);
    expect(withStepTag(['metrics'], 'scores')).toEqual(['metrics', 'step:scores']);
  });

  it('makes a skip cell a step: no skip tag is left beside the step tag (the misplaced-tag bug)', () => {
    expect(withStepTag(['skip'], 'explore')).toEqual(['step:explore']);
    expect(withStepTag(['parameters', 'hide-input'], 'p')).toEqual(['step:p', 'hide-input']);
    expect(tagProblems(withStepTag(['skip'], 'explore'))).toEqual([]);
  });

  it('refuses names the compiler would refuse', () => {
    expect(validateStepName('train_2')).toBeNull();
    expect(validateStepName('')).toBeNull();
    expect(validateStepName('2train')).toMatch(/starts with a letter/);
    expect(validateStepName('a b')).toMatch(/letters, digits/);
    expect(() => withStepTag([], 'a:b')).toThrow();
  });
});

describe('the tag model', () => {
  it('reads every spelling into fields, keeping other tags and dropping what it cannot hold', () => {
    const m = parseTags([
      'block:train', 'prev:load;clean', 'after:split', 'limit:cpu:2', 'limit:nvidia.com/gpu:1',
      'resources:memory=4Gi', 'resources:disk=1', 'retries:2', 'cache:false', 'timeout:1h30m',
      'image:python:3.11-slim', 'hide-input', 'mine'
    ]);
    expect(m.role).toBe('step');
    expect(m.step).toBe('train');
    expect(m.after).toEqual(['load', 'clean', 'split']);
    expect(m.resources).toEqual({ cpu: '2', memory: '4Gi', gpu: '1' });
    expect([m.retries, m.cache, m.timeout, m.image]).toEqual(['2', 'off', '1h30m', 'python:3.11-slim']);
    expect(m.other).toEqual(['hide-input', 'mine']);
    expect(m.dropped).toEqual(['resources:disk=1']);
    expect(tagsOf(m)).toEqual([
      'step:train', 'after:load', 'after:clean', 'after:split', 'resources:cpu=2', 'resources:memory=4Gi',
      'resources:gpu=1', 'image:python:3.11-slim', 'retries:2', 'cache:off', 'timeout:1h30m', 'hide-input', 'mine'
    ]);
  });

  it('keeps a role\'s own spelling while the role stays', () => {
    expect(tagsOf(parseTags(['pipeline-parameters']))).toEqual(['pipeline-parameters']);
    expect(tagsOf(parseTags(['injected-parameters']))).toEqual(['injected-parameters']);
    expect(tagsOf(withRole(parseTags(['pipeline-parameters']), 'metrics'))).toEqual(['metrics']);
  });

  it('a second role is dropped, as the compiler keeps one', () => {
    const m = parseTags(['imports', 'skip']);
    expect(m.role).toBe('imports');
    expect(tagsOf(m)).toEqual(['imports']);
    expect(tagProblems(['imports', 'skip'])).toEqual(["'skip' is not valid here"]);
  });

  it('checks values as the compiler does', () => {
    const bad = parseTags(['step:2x', 'after:a b', 'resources:cpu=lots', 'resources:memory=4GB', 'resources:gpu=0.5',
      'retries:two', 'cache:maybe', 'timeout:soon']);
    expect(validateModel(bad).map(p => p.field)).toEqual(['step', 'after', 'cpu', 'memory', 'gpu', 'retries', 'cache', 'timeout']);
    const good = parseTags(['step:a-1', 'resources:cpu=500m', 'resources:memory=512Mi', 'resources:gpu=1', 'retries:0',
      'cache:on', 'timeout:600']);
    expect(validateModel(good)).toEqual([]);
    expect(validateModel({ ...good, step: '' })[0].message).toMatch(/needs a name/);
    expect(validateModel({ ...good, after: ['a-1'] })[0].message).toMatch(/after itself/);
    expect(validateModel({ ...withRole(good, 'metrics'), step: '' })).toEqual([]);
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('0')).toBeNull();
    expect(parseDuration('1h30m')).toBe(5400);
    expect(parseDuration('30s1m')).toBeNull();
  });

  it('reports what the badges mark: misplaced step tags, bad values, unknown tags', () => {
    expect(tagProblems(['step:explore', 'skip'])[0]).toMatch(/'skip' cell cannot carry step tags/);
    expect(tagProblems(['imports', 'resources:cpu=1'])[0]).toMatch(/cannot carry/);
    expect(tagProblems(['retries:two'])[0]).toMatch(/whole number/);
    expect(tagProblems(['paramters'])).toEqual(["unknown tag 'paramters'"]);
    expect(tagProblems(['step:a', 'after:b', 'hide-input', 'metrics'])).toEqual([]);
    // Kale's pod metadata tags: the compiler warns they are ignored, they are no unknown tag
    expect(tagProblems(['block:a', 'label:team:ml', 'annotation:owner:me'])).toEqual([]);
    expect(tagProblems(['lable:team:ml'])).toEqual(["unknown tag 'lable:team:ml'"]);
  });
});

describe('every role transition', () => {
  const roles: (Role | null)[] = [null, ...ROLES];
  // a cell of each role, as full as the role allows, with another tool's tag and an unknown one
  const full: Record<string, string[]> = {
    null: ['after:load', 'resources:cpu=2', 'hide-input', 'mine'],
    step: ['step:train', 'after:load', 'resources:cpu=2', 'timeout:90s', 'hide-input', 'mine'],
    imports: ['imports', 'hide-input', 'mine'],
    functions: ['functions', 'hide-input', 'mine'],
    parameters: ['pipeline-parameters', 'hide-input', 'mine'],
    metrics: ['pipeline-metrics', 'step:scores', 'retries:1', 'hide-input', 'mine'],
    skip: ['skip', 'hide-input', 'mine']
  };
  const roleTags = ['imports', 'functions', 'parameters', 'pipeline-parameters', 'metrics', 'pipeline-metrics', 'skip'];

  for (const from of roles) {
    for (const to of roles) {
      it(`${from ?? 'none'} → ${to ?? 'none'}`, () => {
        const before = parseTags(full[String(from)]);
        let next = withRole(before, to);
        if (to === 'step' && !next.step) {
          next = { ...next, step: 'fresh' };
        }
        const tags = tagsOf(next);
        const after = parseTags(tags);
        expect(after.role).toBe(to);
        // no tag of the old role is left, unless the role stays
        const leftRoles = tags.filter(t => roleTags.includes(t));
        expect(leftRoles.length).toBe(to && to !== 'step' ? 1 : 0);
        // the compiler accepts it: only the unknown tag (kept) is reported
        expect(tagProblems(tags)).toEqual(["unknown tag 'mine'"]);
        expect(validateModel(next)).toEqual([]);
        // other tools' tags and unknown tags are kept, in order, at the end
        expect(tags.slice(-2)).toEqual(['hide-input', 'mine']);
        // step options stay when both roles take them, and go when the new one cannot carry them
        const optionsBefore = hasStepOptions(before);
        const takes = !['imports', 'functions', 'parameters', 'skip'].includes(String(to));
        expect(hasStepOptions(after)).toBe(optionsBefore && takes);
        // the step name stays only on roles that take one
        if (to === 'step') {
          expect(after.step).toBe(from === 'step' || from === 'metrics' ? before.step : 'fresh');
        } else if (to !== 'metrics') {
          expect(tags.some(t => t.startsWith('step:'))).toBe(false);
        }
      });
    }
  }
});

describe('the steps the compiler makes', () => {
  const code = (tags: string[] | null, source = 'x = 1') => ({ type: 'code', tags, source });
  it('continues a step of the same name right after it, and finds duplicates further down', () => {
    const cells = [
      code(['imports']),
      code(['step:load']),
      code(['step:load']),
      { type: 'markdown', tags: ['step:load'], source: '' },
      code(['step:train']),
      code(['skip', 'step:load']),
      code(['step:load']),
      code(['metrics'])
    ];
    const { steps, duplicates } = layoutSteps(cells);
    expect(steps).toEqual([
      { name: 'load', cell: 1 },
      { name: 'train', cell: 4 },
      { name: 'metrics', cell: 7 }
    ]);
    expect(duplicates).toEqual([{ name: 'load', cell: 6, first: 1 }]);
  });

  it('names leading untagged code after the notebook, skipping comment-only cells', () => {
    const { steps } = layoutSteps([code(null, '# note'), code(null), code(['step:a'])], 'nb');
    expect(steps).toEqual([
      { name: 'nb', cell: 1 },
      { name: 'a', cell: 2 }
    ]);
  });
});

describe('conflicts with the rest of the notebook', () => {
  const code = (tags: string[] | null) => ({ type: 'code', tags, source: 'x = 1' });
  const cells = [code(['step:load']), code(null), code(['step:train']), code(['skip'])];
  it('refuses a step name used further up, and after: a step that does not exist', () => {
    expect(stepConflicts(cells, 3, ['step:load'])[0]).toMatch(/already starts at cell 1/);
    expect(stepConflicts(cells, 1, ['step:load'])).toEqual([]); // continues the step right above
    expect(stepConflicts(cells, 3, ['step:evaluate', 'after:load'])).toEqual([]);
    expect(stepConflicts(cells, 3, ['step:evaluate', 'after:nope'])[0]).toMatch(/no step 'nope'/);
  });

  it('names the default step as the compiler does', () => {
    expect(defaultStepName('dir/iris.ipynb')).toBe('iris');
    expect(defaultStepName('2 models.ipynb')).toBe('nb_2_models');
  });
});
