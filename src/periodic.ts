/**
 * Runs a pass every `intervalMs`, counted from the end of the previous pass, so passes never
 * overlap. A failed pass is reported and the next one runs as planned. The timer does not keep
 * the process alive; stop() waits for a pass in progress.
 */
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;
  private active = false;

  constructor(
    private readonly pass: () => Promise<unknown>,
    private readonly intervalMs: number,
    private readonly onError: (error: unknown) => void,
  ) {}

  get isActive(): boolean {
    return this.active;
  }

  /** The first pass runs after `firstDelayMs` (default: one interval). */
  start(firstDelayMs = this.intervalMs): void {
    if (this.active) return;
    this.active = true;
    this.schedule(firstDelayMs);
  }

  async stop(): Promise<void> {
    this.active = false;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(delayMs = this.intervalMs): void {
    if (!this.active) return;
    this.timer = setTimeout(() => {
      this.running = this.pass()
        .catch(this.onError)
        .finally(() => this.schedule());
    }, delayMs);
    this.timer.unref();
  }
}
