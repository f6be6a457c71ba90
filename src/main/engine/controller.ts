/**
 * Pause, resume and stop for a running training, honoured at batch boundaries. The loop
 * awaits `gate()` before each batch; stop (or the AbortSignal) ends the run cleanly with a
 * resumable last checkpoint, never by throwing out of the middle of a step.
 */
export class TrainController {
  private pausedFlag = false;
  private stopFlag = false;
  private wake: (() => void)[] = [];

  get paused(): boolean {
    return this.pausedFlag;
  }

  get stopped(): boolean {
    return this.stopFlag;
  }

  /** Hold the loop at the next batch boundary. */
  pause(): void {
    this.pausedFlag = true;
  }

  resume(): void {
    this.pausedFlag = false;
    this.flush();
  }

  /** End the run at the next batch boundary (status 'stopped', resumable). */
  stop(): void {
    this.stopFlag = true;
    this.flush();
  }

  private flush(): void {
    for (const w of this.wake.splice(0)) w();
  }

  /** Resolves when the loop may go on: immediately, or on resume / stop / abort. */
  async gate(signal?: AbortSignal): Promise<void> {
    while (this.pausedFlag && !this.stopFlag && !signal?.aborted) {
      await new Promise<void>((resolve) => {
        this.wake.push(resolve);
        signal?.addEventListener('abort', () => resolve(), { once: true });
      });
    }
  }
}
