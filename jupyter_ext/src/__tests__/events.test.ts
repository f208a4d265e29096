import { ISocketLike, LiveMode, LiveUpdates, parseEvent } from '../events';
import { IEvent } from '../wire';

class FakeSocket implements ISocketLike {
  onopen: ((ev: any) => void) | null = null;
  onmessage: ((ev: { data: any }) => void) | null = null;
  onclose: ((ev: any) => void) | null = null;
  onerror: ((ev: any) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.({});
  }
  send(event: object | string) {
    this.onmessage?.({ data: typeof event === 'string' ? event : JSON.stringify(event) });
  }
  drop() {
    this.onclose?.({});
  }
}

function setup(active = true) {
  const sockets: FakeSocket[] = [];
  const events: IEvent[] = [];
  const modes: LiveMode[] = [];
  let polls = 0;
  const live = new LiveUpdates({
    url: () => 'ws://host/nbscale/api/events?path=iris.ipynb',
    onEvent: e => events.push(e),
    poll: async () => {
      polls += 1;
    },
    active: () => active,
    pollInterval: 1000,
    safetyInterval: 5000,
    socketFactory: url => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    onModeChanged: m => modes.push(m)
  });
  return { live, sockets, events, modes, polls: () => polls };
}

describe('live updates', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('parses events and ignores anything else', () => {
    expect(parseEvent('{"type": "step", "step": "a"}')).toEqual({ type: 'step', step: 'a' });
    expect(parseEvent('not json')).toBeNull();
    expect(parseEvent('{"no": "type"}')).toBeNull();
    expect(parseEvent(42)).toBeNull();
  });

  it('passes websocket events on and polls only as a slow safety net', async () => {
    const t = setup();
    t.live.restart();
    expect(t.sockets).toHaveLength(1);
    t.sockets[0].open();
    expect(t.live.mode).toBe('websocket');
    await Promise.resolve();
    const afterOpen = t.polls(); // one catch-up poll on open
    t.sockets[0].send({ type: 'step', run_id: 'r', step: 'load', status: 'succeeded' });
    t.sockets[0].send('garbage');
    expect(t.events).toEqual([{ type: 'step', run_id: 'r', step: 'load', status: 'succeeded' }]);
    await jest.advanceTimersByTimeAsync(3000);
    expect(t.polls()).toBe(afterOpen);
    t.live.dispose();
  });

  it('falls back to polling when the socket drops, then reconnects with back-off', async () => {
    const t = setup();
    t.live.restart();
    t.sockets[0].drop();
    expect(t.live.mode).toBe('polling');
    await jest.advanceTimersByTimeAsync(1000);
    expect(t.sockets).toHaveLength(2); // reconnect after 1 s
    await jest.advanceTimersByTimeAsync(2500);
    expect(t.polls()).toBeGreaterThanOrEqual(3); // polled every second meanwhile
    t.sockets[1].drop();
    await jest.advanceTimersByTimeAsync(1500);
    expect(t.sockets).toHaveLength(2); // back-off: 2 s now
    await jest.advanceTimersByTimeAsync(600);
    expect(t.sockets).toHaveLength(3);
    t.sockets[2].open();
    expect(t.live.mode).toBe('websocket');
    expect(t.modes).toEqual(['connecting', 'polling', 'connecting', 'polling', 'connecting', 'websocket']);
    t.live.dispose();
  });

  it('does not poll when nothing is active', async () => {
    const t = setup(false);
    t.live.restart();
    t.sockets[0].drop();
    await jest.advanceTimersByTimeAsync(5000);
    expect(t.polls()).toBe(0);
    t.live.dispose();
  });

  it('closes the old socket and ignores its late messages after a restart', () => {
    const t = setup();
    t.live.restart();
    const old = t.sockets[0];
    t.live.restart();
    expect(old.closed).toBe(true);
    old.send({ type: 'run', run_id: 'x', status: 'running' });
    expect(t.events).toHaveLength(0);
    expect(t.sockets).toHaveLength(2);
    t.live.dispose();
    expect(t.live.mode).toBe('stopped');
  });

  it('polls instead when the socket cannot even be created', async () => {
    let polls = 0;
    const live = new LiveUpdates({
      url: () => 'ws://x',
      onEvent: () => undefined,
      poll: async () => {
        polls += 1;
      },
      active: () => true,
      pollInterval: 500,
      socketFactory: () => {
        throw new Error('no websockets here');
      }
    });
    live.restart();
    expect(live.mode).toBe('polling');
    await jest.advanceTimersByTimeAsync(1600);
    expect(polls).toBeGreaterThanOrEqual(3);
    live.dispose();
  });
});
