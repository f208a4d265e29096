/**
 * Events of runs the panel does not show yet: a run started in another tab, or step events
 * that arrive before the answer to the panel's own POST. They are kept per run (a bounded
 * few) and replayed onto the run's detail when the panel shows that run.
 */
import { applyEvent } from './reducers';
import { IEvent, IRunDetail } from './wire';

export class EarlyEvents {
  private _byRun = new Map<string, IEvent[]>();

  constructor(
    readonly maxRuns = 5,
    readonly maxEventsPerRun = 200
  ) {}

  /** Keep an event of a run (the oldest runs are forgotten first). */
  keep(event: IEvent): void {
    if (!event.run_id) {
      return;
    }
    const events = this._byRun.get(event.run_id) ?? [];
    events.push(event);
    this._byRun.set(event.run_id, events.slice(-this.maxEventsPerRun));
    while (this._byRun.size > this.maxRuns) {
      this._byRun.delete(this._byRun.keys().next().value as string);
    }
  }

  /** The run with the events kept for it applied; they are forgotten then. */
  replay(run: IRunDetail): IRunDetail {
    const events = this._byRun.get(run.run_id) ?? [];
    this._byRun.delete(run.run_id);
    return events.reduce((r, e) => applyEvent(r, e), run);
  }

  clear(): void {
    this._byRun.clear();
  }
}
