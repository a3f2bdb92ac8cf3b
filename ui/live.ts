// Server-sent events of a run: the lines of its events.jsonl (engine/store/live-events.ts) from the
// start, then new ones as the running process appends them, until its record is no longer
// `running` and the file is read to its end. Tails by polling the file size (works on every file
// system, and a run in another process gives no other signal).
import { open } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { liveEventsFile } from '../engine/store/live-events.js';
import { outcomeOf, type UiData } from './data.js';

const POLL_MS = 200;

export async function streamRunEvents(data: UiData, id: string, res: ServerResponse, closed: AbortSignal): Promise<void> {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  res.write('retry: 1000\n\n');
  const file = liveEventsFile(data.store.runs.dir, id);
  let offset = 0;
  let partial = '';
  const decoder = new StringDecoder('utf8');
  while (!closed.aborted) {
    // Read the record first: lines written before it said the run ended are sent below.
    const record = await data.record(id);
    const running = record?.outcome === 'running' && outcomeOf(record) === 'running';
    const chunk = await readFrom(file, offset);
    offset += chunk.length;
    const lines = (partial + decoder.write(chunk)).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) res.write(`data: ${line}\n\n`);
    if (!running) {
      res.write(`event: end\ndata: ${JSON.stringify({ outcome: record ? outcomeOf(record) : 'unknown' })}\n\n`);
      res.end();
      return;
    }
    await sleep(POLL_MS, undefined, { signal: closed }).catch(() => {});
  }
  res.end();
}

async function readFrom(file: string, offset: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const { size } = await handle.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buffer = Buffer.alloc(size - offset);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
