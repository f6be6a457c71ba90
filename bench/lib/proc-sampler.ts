/**
 * Memory and CPU time of another process from /proc (Linux): resident set now and its
 * high-water mark, and user + system CPU time of all its threads. Used by benches that run
 * the CLI as a child and want numbers per epoch, not just the peak /usr/bin/time gives.
 */
import fs from 'node:fs';

export interface ProcSample {
  rssMB: number;
  /** Peak resident set so far (VmHWM). */
  hwmMB: number;
  cpuSeconds: number;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** One sample of `pid`, or null when it has gone. */
export function sampleProcess(pid: number): ProcSample | null {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    // Fields after the ")" closing the command name: utime and stime are the 12th and 13th.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { rssMB: kb('VmRSS') / 1024, hwmMB: kb('VmHWM') / 1024, cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
  } catch {
    return null;
  }
}

function children(pid: number): number[] {
  try {
    return fs
      .readdirSync(`/proc/${pid}/task`)
      .flatMap((tid) => fs.readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/))
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** The first descendant of `pid` (breadth first) running the executable `exe`, or null. */
export function findDescendant(pid: number, exe: string): number | null {
  const want = fs.realpathSync(exe);
  const queue = children(pid);
  while (queue.length) {
    const p = queue.shift()!;
    try {
      if (fs.readlinkSync(`/proc/${p}/exe`) === want) return p;
    } catch {
      // gone, or not ours to read
    }
    queue.push(...children(p));
  }
  return null;
}
