/**
 * The step runner. A flow is a sequence of named steps; each is appended to the
 * migration record and saved before its work begins, and saved again when it
 * ends, so a restarted controller knows where its predecessor stopped. Step
 * names are typed per flow (flows/*.ts), so recovery and tests cannot match a
 * misspelt one.
 */
import type { StepRecord, StepState, StoredMigration } from './types';

const now = (): string => new Date().toISOString();
export const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Ends a flow early with a final state (skip, refusal, dry run, abort). */
export class FlowEnd extends Error {
  constructor(readonly state: 'completed' | 'failed' | 'aborted' | 'rolled_back', readonly outcome: string) {
    super(outcome);
  }
}

/** Where a fault hook runs: after a step's start is saved, before its work; or after its work, before its end is saved. */
export type FaultPoint = 'start' | 'end';

/**
 * Fault injection for tests, by step name: the hook runs at both points of
 * every step of that name, and what it throws fails the step exactly as a
 * failure of the step's own work would. Production wiring never sets it.
 */
export type StepFaults<N extends string = string> = Partial<Record<N, (at: FaultPoint) => void | Promise<void>>>;

/** One running step, as its work sees it. */
export class Step<N extends string> {
  constructor(private readonly runner: StepRunner<N>, private readonly record: StepRecord) {}

  get name(): string { return this.record.name; }
  get state(): StepState { return this.record.state; }

  /** what the record shows for the step */
  get detail(): string | undefined { return this.record.detail; }
  set detail(d: string | undefined) { this.record.detail = d; }

  /**
   * A step that runs while this one is still running, e.g. the flip's final
   * verify while traffic is held. It is recorded after this one, as its own step.
   */
  inner<T>(name: N, fn: (s: Step<N>) => Promise<T>): Promise<T> {
    return this.runner.run(name, fn);
  }

  /**
   * This step's own work is done, though it still frames what follows inside
   * it (traffic held around the apply): the record shows it done from now on;
   * its duration, taken when it returns, spans what ran inside.
   */
  markDone(): void {
    this.record.state = 'done';
    this.record.finishedAt = now();
  }
}

export interface StepRunnerOptions<N extends string> {
  rec: StoredMigration;
  /** the flow's steps in order: the share of the progress bar each ends at; other steps leave progress alone */
  progressSteps: readonly N[];
  save(): Promise<void>;
  /** why the migration must stop before its next step, if it must */
  stopReason(): string | undefined;
  faults?: StepFaults<N>;
}

export class StepRunner<N extends string> {
  constructor(private readonly o: StepRunnerOptions<N>) {}

  /** Runs one step: its start is persisted before it runs, its end before the next. */
  async run<T>(name: N, fn: (s: Step<N>) => Promise<T>): Promise<T> {
    const { rec } = this.o;
    const reason = this.o.stopReason();
    if (reason !== undefined) throw new FlowEnd('aborted', `aborted: ${reason}`);
    const s: StepRecord = { name, state: 'running', startedAt: now() };
    rec.steps.push(s);
    await this.o.save();
    const t0 = Date.now();
    const fault = this.o.faults?.[name];
    try {
      await fault?.('start');
      const out = await fn(new Step(this, s));
      await fault?.('end');
      s.state = s.state === 'running' ? 'done' : s.state;
      return out;
    } catch (err) {
      // a flow that ends early but well (skip, dry run) leaves its step done
      s.state = err instanceof FlowEnd && err.state === 'completed' ? 'done' : 'failed';
      s.detail ??= errMsg(err);
      throw err;
    } finally {
      s.finishedAt = now();
      s.durationMs = Date.now() - t0;
      const idx = this.o.progressSteps.indexOf(name);
      if (idx >= 0 && s.state !== 'failed') rec.progress = Math.max(rec.progress, (idx + 1) / this.o.progressSteps.length);
      await this.o.save();
    }
  }

  /** Records a step that did not run, and why. */
  async skip(name: N, detail: string): Promise<void> {
    this.o.rec.steps.push({ name, state: 'skipped', startedAt: now(), finishedAt: now(), durationMs: 0, detail });
    await this.o.save();
  }

  /** Whether the record holds a step of this name (in this state, if given): what recovery decides by. */
  ran(name: N, state?: StepState): boolean {
    return this.o.rec.steps.some((x) => x.name === name && (!state || x.state === state));
  }
}
