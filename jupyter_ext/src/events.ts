/**
 * Live updates: the server's event websocket, with polling as the fallback while the socket is
 * down (it reconnects with back-off). A slow safety poll runs even while the socket is up, so a
 * missed event never leaves the panel stale for long.
 */
import { IEvent } from './wire';

export interface ISocketLike {
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  close(): void;
}

export type SocketFactory = (url: string) => ISocketLike;

export type LiveMode = 'connecting' | 'websocket' | 'polling' | 'stopped';

export interface ILiveUpdatesOptions {
  /** The websocket URL for the current notebook; null: no notebook, nothing to follow. */
  url: () => string | null;
  onEvent: (event: IEvent) => void;
  /** Fetches what the events would have told (run detail, cluster). */
  poll: () => Promise<void>;
  /** Whether polling is worth it now (a run is active, or the cluster section is open). */
  active: () => boolean;
  pollInterval?: number;
  /** Poll this often while the socket is up: a safety net only. */
  safetyInterval?: number;
  socketFactory?: SocketFactory;
  onModeChanged?: (mode: LiveMode) => void;
  maxBackoff?: number;
}

export function parseEvent(data: unknown): IEvent | null {
  if (typeof data !== 'string') {
    return null;
  }
  try {
    const value = JSON.parse(data);
    if (value && typeof value === 'object' && typeof value.type === 'string') {
      return value as IEvent;
    }
  } catch {
    // not JSON: ignore
  }
  return null;
}

export class LiveUpdates {
  private _socket: ISocketLike | null = null;
  private _mode: LiveMode = 'stopped';
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _timerInterval = 0;
  private _reconnect: ReturnType<typeof setTimeout> | null = null;
  private _backoff = 1000;
  private _polling = false;
  private _disposed = false;
  private _generation = 0;

  constructor(private readonly options: ILiveUpdatesOptions) {}

  get mode(): LiveMode {
    return this._mode;
  }

  get pollInterval(): number {
    return this.options.pollInterval ?? 1000;
  }

  set pollInterval(value: number) {
    this.options.pollInterval = Math.max(200, value);
  }

  /** (Re)connect for the current URL: call when the notebook changes. */
  restart(): void {
    this.stop();
    if (this._disposed) {
      return;
    }
    const url = this.options.url();
    if (!url) {
      return;
    }
    this._generation += 1;
    this._open(url, this._generation);
    this._schedulePoll();
  }

  stop(): void {
    this._generation += 1;
    if (this._socket) {
      const socket = this._socket;
      this._socket = null;
      socket.onclose = null;
      socket.onerror = null;
      socket.onmessage = null;
      socket.onopen = null;
      try {
        socket.close();
      } catch {
        // already closed
      }
    }
    this._clear();
    this._setMode('stopped');
  }

  /** Poll right now (and keep the schedule): after a user action, for instance. */
  async pollNow(): Promise<void> {
    if (this._polling) {
      return;
    }
    this._polling = true;
    try {
      await this.options.poll();
    } catch {
      // the next poll retries; the panel shows request errors itself
    } finally {
      this._polling = false;
    }
  }

  dispose(): void {
    this._disposed = true;
    this.stop();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  private _open(url: string, generation: number): void {
    const factory = this.options.socketFactory ?? ((u: string) => new WebSocket(u) as unknown as ISocketLike);
    let socket: ISocketLike;
    this._setMode('connecting');
    try {
      socket = factory(url);
    } catch {
      this._fallBack(generation);
      return;
    }
    this._socket = socket;
    socket.onopen = () => {
      if (generation !== this._generation) {
        return;
      }
      this._backoff = 1000;
      this._setMode('websocket');
      this._schedulePoll();
      // catch up with whatever happened while connecting
      void this.pollNow();
    };
    socket.onmessage = (ev: { data: any }) => {
      if (generation !== this._generation) {
        return;
      }
      const event = parseEvent(ev.data);
      if (event) {
        this.options.onEvent(event);
      }
    };
    socket.onerror = () => {
      // onclose follows
    };
    socket.onclose = () => {
      if (generation !== this._generation) {
        return;
      }
      this._socket = null;
      this._fallBack(generation);
    };
  }

  private _fallBack(generation: number): void {
    this._setMode('polling');
    if (!this._timer || this._timerInterval > this.pollInterval) {
      this._schedulePoll();
    }
    const delay = this._backoff;
    this._backoff = Math.min(this._backoff * 2, this.options.maxBackoff ?? 30000);
    if (this._reconnect) {
      clearTimeout(this._reconnect);
    }
    this._reconnect = setTimeout(() => {
      this._reconnect = null;
      if (generation !== this._generation || this._disposed) {
        return;
      }
      const url = this.options.url();
      if (url) {
        this._open(url, generation);
      }
    }, delay);
  }

  private _schedulePoll(): void {
    if (this._timer) {
      clearTimeout(this._timer);
    }
    const generation = this._generation;
    const interval =
      this._mode === 'websocket' ? this.options.safetyInterval ?? 5 * this.pollInterval : this.pollInterval;
    this._timerInterval = interval;
    this._timer = setTimeout(async () => {
      this._timer = null;
      if (generation !== this._generation || this._disposed) {
        return;
      }
      if (this.options.active()) {
        await this.pollNow();
      }
      if (generation === this._generation) {
        this._schedulePoll();
      }
    }, interval);
  }

  private _clear(): void {
    if (this._timer) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._reconnect) {
      clearTimeout(this._reconnect);
      this._reconnect = null;
    }
  }

  private _setMode(mode: LiveMode): void {
    if (mode !== this._mode) {
      this._mode = mode;
      this.options.onModeChanged?.(mode);
    }
  }
}
