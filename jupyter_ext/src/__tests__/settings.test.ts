import { DEFAULT_SETTINGS, readSettings } from '../settings';

describe('panel settings', () => {
  it('reads the keys the panel knows, leaving unset ones to the defaults', () => {
    const values: Record<string, unknown> = { defaultEngine: 'papermill', pollInterval: 500, showBadges: null, other: 1 };
    const settings = { get: (key: string) => ({ composite: values[key] as any, user: undefined }) };
    expect(readSettings(settings as any)).toEqual({ defaultEngine: 'papermill', pollInterval: 500 });
    expect(DEFAULT_SETTINGS.defaultEngine).toBe('dask');
  });
});
