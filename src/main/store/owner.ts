/**
 * Which process owns a running run, and whether it still exists. A run is stamped with the
 * owner's pid, the machine's boot id and the process start time; after a reboot or a crash
 * the pid is gone (or belongs to someone else), so the run can be marked interrupted.
 */
import fs from 'node:fs';
import os from 'node:os';

export interface Owner {
  pid: number;
  boot: string;
  /** Process start time as the OS reports it (Linux: clock ticks since boot), or null. */
  started: string | null;
}

let cachedBoot: string | null = null;

/** A stable id of the current boot of this machine. */
export function bootId(): string {
  if (cachedBoot) return cachedBoot;
  try {
    cachedBoot = fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    // No /proc (macOS, Windows): the boot time, rounded to a minute against clock jitter.
    cachedBoot = `t${Math.round((Date.now() - os.uptime() * 1000) / 60_000)}`;
  }
  return cachedBoot;
}

interface ProcStat {
  state: string;
  started: string;
}

/** Linux only: state and start time of a pid from /proc/<pid>/stat, or null. */
function procStat(pid: number): ProcStat | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], started: rest[19] };
  } catch {
    return null;
  }
}

/** The identity of this process, stamped on the runs it creates or resumes. */
export function currentOwner(): Owner {
  return { pid: process.pid, boot: bootId(), started: procStat(process.pid)?.started ?? null };
}

/** True when the owner process is still alive in this boot (not a recycled pid, not a zombie). */
export function isOwnerAlive(owner: { pid: number | null; boot: string | null; started: string | null }): boolean {
  if (!owner.pid || owner.boot !== bootId()) return false;
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = procStat(owner.pid);
  if (stat) {
    if (stat.state === 'Z' || stat.state === 'X') return false;
    if (owner.started && stat.started !== owner.started) return false;
  }
  return true;
}
