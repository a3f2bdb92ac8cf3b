// What a worker keeps of a stage's output for the coordinator (sent as the job's log, read back by
// the coordinator into its run's stage log): the first and last lines, bounded like a local stage
// log, so a chatty stage cannot fill Redis.
export const JOB_LOG_HEAD_BYTES = 64 * 1024;
export const JOB_LOG_TAIL_BYTES = 64 * 1024;

export class JobLog {
  private readonly head: string[] = [];
  private headBytes = 0;
  private headClosed = false;
  private readonly tail: string[] = [];
  private tailBytes = 0;
  private omitted = 0;

  constructor(private readonly limits = { head: JOB_LOG_HEAD_BYTES, tail: JOB_LOG_TAIL_BYTES }) {}

  get empty(): boolean {
    return this.head.length === 0 && this.tail.length === 0;
  }

  line(text: string): void {
    const bytes = Buffer.byteLength(text) + 1;
    if (!this.headClosed && this.headBytes + bytes <= this.limits.head) {
      this.head.push(text);
      this.headBytes += bytes;
      return;
    }
    this.headClosed = true;
    this.tail.push(text);
    this.tailBytes += bytes;
    while (this.tailBytes > this.limits.tail && this.tail.length > 0) {
      this.tailBytes -= Buffer.byteLength(this.tail.shift()!) + 1;
      this.omitted++;
    }
  }

  text(): string {
    const gap = this.omitted ? [`[... ${this.omitted} line${this.omitted === 1 ? '' : 's'} not kept (logs keep their first and last lines) ...]`] : [];
    return [...this.head, ...gap, ...this.tail].join('\n');
  }
}
