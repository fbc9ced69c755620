// Types of the Node.js binding of turn (index.js).

/** Result names of the C library without `TURN_ERR_`, and `CLOSED`. */
export type TurnErrorCode =
  | 'NULL_ARGUMENT'
  | 'INVALID_ARGUMENT'
  | 'CONNECTION'
  | 'TIMEOUT'
  | 'WOULD_BLOCK'
  | 'LOST'
  | 'BUSY'
  | 'NOT_FOUND'
  | 'FORKED'
  | 'PROTOCOL'
  | 'CANCELED'
  | 'WRONG_KIND'
  | 'PANIC'
  | 'CLOSED';

/** A failed call: `code` names the result, `message` has the library's detail. */
export class TurnError extends Error {
  readonly name: 'TurnError';
  readonly code: TurnErrorCode;
  /** The numeric turn_result (undefined for CLOSED). */
  readonly result: number | undefined;
}

/** Times are in seconds. */
export interface WaitOptions {
  /** Shown in status and log lines; default "". At most 4096 bytes. */
  label?: string;
  /** The lease, renewed by the heartbeat; default 10, at least 0.1. */
  expire?: number;
  /** The longest wait without news before the queue is read again; default 60. */
  patience?: number;
  /** Default: wait forever; 0 tries once (WOULD_BLOCK); else TIMEOUT after it. */
  timeout?: number | null;
  /** Aborting it withdraws the ticket; the promise rejects with its reason. */
  signal?: AbortSignal;
  /**
   * Hears a waiting acquire's position: the tickets ahead of it, the
   * holder included (1: next), as the library last read the queue (at the
   * draw and each time the waiter looked at the queue since, not at each
   * hand-off; tickets withdrawn or dead count until the queue passes
   * them), each time that reading changes (looked at every 0.1 s, no
   * round trip). Never called for a lock had at once. `resource` names
   * the resource waited for (lockAll waits for each in turn). If it
   * throws, or returns a promise that rejects, the ticket is withdrawn
   * and the acquire rejects with that reason.
   */
  onPosition?: (ahead: number, resource: string) => void | Promise<void>;
}

export interface SemaphoreOptions extends WaitOptions {
  /** The semaphore's permits (recorded by the queue). */
  permits: number;
  /** Permits this holder takes; default 1. */
  weight?: number;
}

export interface RwlockOptions extends WaitOptions {
  /** A writer (alone) when true; a reader (beside readers) by default. */
  exclusive?: boolean;
}

export interface LockerOptions {
  /** Key prefix; default "turn". */
  prefix?: string;
  connectTimeout?: number;
  commandTimeout?: number;
  poolSize?: number;
  grace?: number;
  clockSerials?: boolean;
  tls?: { ca?: string | null; cert?: string | null; key?: string | null };
  minReplicas?: { replicas: number; timeout?: number };
}

export interface Ticket {
  serial: bigint;
  label: string;
  /** It holds (else it waits). */
  held: boolean;
  /** Drawn by this library; false for a turn 1.0 client's ticket. */
  ours: boolean;
  /** Its fencing token; null when not known (a turn 1.0 ticket). */
  token: bigint | null;
  /** Seconds a holder has held; null for a waiter or when not known. */
  heldFor: number | null;
  /** Seconds a waiter has waited; null for a holder or when not known. */
  waitedFor: number | null;
  /** Seconds left of its lease; null when it has no expiry. */
  leaseLeft: number | null;
  /** A waiter's place among the waiters, from 1; null for a holder. */
  position: number | null;
  /** The permits it takes of a semaphore (1 in other queues). */
  weight: number;
  /** It holds alone: a plain queue's ticket, a writer. */
  exclusive: boolean;
}

export interface Status {
  resource: string;
  kind: 'plain' | 'semaphore' | 'rwlock';
  /** A semaphore's permits. */
  permits?: number;
  /** The serial whose turn it is. */
  indicator: bigint;
  /** The last serial handed out. */
  dispenser: bigint;
  /** Live tickets, holders and waiters, in serial order. */
  tickets: Ticket[];
}

export class Lock {
  readonly resource: string;
  readonly label: string;
  /** The fencing token: greater than every earlier grant's on this resource. */
  readonly token: bigint;
  /** The ticket number (turn 1.0's serial); starts over with a new queue. */
  readonly serial: bigint;
  /** Resolves once the lock is known lost; never for a lock released normally. */
  readonly lost: Promise<void>;
  /** Throws a TurnError LOST once the lock is lost (no round trip). */
  check(): void;
  /** Rejects with a TurnError LOST when the lock had been lost. */
  release(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export class Locker {
  /** `url` undefined or null: redis://127.0.0.1:6379/0. Connects at first use. */
  constructor(url?: string | null, options?: LockerOptions);
  connect(): Promise<this>;
  lock(resource: string, options?: WaitOptions): Promise<Lock>;
  semaphore(resource: string, options: SemaphoreOptions): Promise<Lock>;
  rwlock(resource: string, options?: RwlockOptions): Promise<Lock>;
  /** Plain locks on every resource or none, in the order given. */
  lockAll(resources: string[], options?: WaitOptions): Promise<Lock[]>;
  status(resource: string): Promise<Status>;
  /** The locker's own counters and histograms, Prometheus text format. */
  metrics(): Promise<string>;
  bump(resource: string): Promise<bigint>;
  reset(resource: string): Promise<void>;
  health(): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** The library's version, such as "0.1.0". */
export function version(): string;
