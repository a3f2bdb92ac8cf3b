// The stage queue's depth for the metrics (engine/metrics/): job counts by state, or undefined when
// Redis does not answer within a second (a scrape must not hang on it).
import { Queue } from 'bullmq';
import { settlesWithin } from '../lifecycle/bounded.js';
import type { QueueTarget } from './target.js';

const STATES = ['wait', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed'] as const;
const PROBE_MS = 1000;

export interface QueueDepth {
  probe(): Promise<Record<string, number> | undefined>;
  close(): Promise<void>;
}

export function queueDepth(target: QueueTarget): QueueDepth {
  const queue = new Queue(target.name, { connection: target.connection });
  queue.on('error', () => {}); // a scrape reports the depth as absent instead
  return {
    probe: async () => {
      const counts = queue.getJobCounts(...STATES);
      if (!(await settlesWithin(counts, PROBE_MS))) return undefined;
      return counts.catch(() => undefined);
    },
    close: async () => void (await settlesWithin(queue.close(), PROBE_MS)),
  };
}
