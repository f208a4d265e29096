import { ApiError, FINISHED, isFinished, STATUSES } from '../wire';

describe('step statuses', () => {
  it('knows which statuses are final', () => {
    expect(['succeeded', 'failed', 'cached', 'upstream_failed', 'cancelled'].every(isFinished)).toBe(true);
    expect(isFinished('running')).toBe(false);
    expect(isFinished('pending')).toBe(false);
    expect(isFinished(undefined)).toBe(false);
  });

  it('lists every status once, the finished ones among them', () => {
    expect(new Set(STATUSES).size).toBe(STATUSES.length);
    expect([...FINISHED].every(s => (STATUSES as string[]).includes(s))).toBe(true);
  });
});

describe('server errors', () => {
  it('keeps the HTTP status and the detail with the one-line message', () => {
    const err = new ApiError('not a notebook', 400, { path: 'x.txt' });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('ApiError');
    expect(err.message).toBe('not a notebook');
    expect(err.status).toBe(400);
    expect(err.detail).toEqual({ path: 'x.txt' });
  });
});
