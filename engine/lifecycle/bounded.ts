// Waiting with a bound: a shutdown step that depends on something outside this process (Redis, a
// remote, a child) may never finish, and `systemctl stop` or a pod's termination must not wait for it.

/** Resolves true when `promise` settles within `ms`, false when it does not (it keeps running). */
export function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

/** How long each stop step may take: the whole stop stays within a few seconds. */
export const STOP_STEP_MS = 3000;

export interface StopSteps {
  /** The stop is slow: push harder (e.g. the second signal, which makes a run exit at once). */
  escalate(): void;
  /** Still not done: leave now. */
  giveUp(): never;
}

/** After a stop was asked for: escalates if `done` has not settled within `stepMs`, gives up a step later. */
export function boundStop(done: Promise<unknown>, steps: StopSteps, stepMs = STOP_STEP_MS): void {
  void (async () => {
    if (await settlesWithin(done, stepMs)) return;
    steps.escalate();
    if (!(await settlesWithin(done, stepMs))) steps.giveUp();
  })();
}
