// Type declarations for herald.js, the browser client of herald's WebSocket
// protocol herald.v1 (contract §3, v1.2).

export declare const PROTOCOL: "herald.v1";

/** The protocol's error codes, plus the client-side `closed`. */
export type ErrorCode =
  | "unauthorized" | "token_expired" | "forbidden" | "invalid_subject" | "bad_request"
  | "duplicate_subscription" | "too_many_subscriptions" | "history_gap" | "rate_limited"
  | "unavailable" | "internal" | "closed";

export declare const ErrorCodes: Readonly<{
  UNAUTHORIZED: "unauthorized"; TOKEN_EXPIRED: "token_expired"; FORBIDDEN: "forbidden";
  INVALID_SUBJECT: "invalid_subject"; BAD_REQUEST: "bad_request";
  DUPLICATE_SUBSCRIPTION: "duplicate_subscription"; TOO_MANY_SUBSCRIPTIONS: "too_many_subscriptions";
  HISTORY_GAP: "history_gap"; RATE_LIMITED: "rate_limited"; UNAVAILABLE: "unavailable";
  INTERNAL: "internal"; CLOSED: "closed";
}>;

export declare const CloseCodes: Readonly<{
  GOING_AWAY: 1001; TOO_LARGE: 1009; UNAUTHORIZED: 4001; PING_TIMEOUT: 4002;
  SLOW_CONSUMER: 4008; RATE_LIMITED: 4029;
}>;

/** An `error` frame from herald, or a client-side failure (`closed`, `unavailable`). */
export declare class HeraldError extends Error {
  readonly name: "HeraldError";
  readonly code: ErrorCode | string;
  /** The subject or pattern the error is about. */
  readonly subject?: string;
  /** The request's id. */
  readonly id?: string;
  /** history_gap: the first sequence the stream still holds. */
  readonly firstSeq?: number;
  /** The WebSocket close code when the connection ended before a reply. */
  readonly closeCode?: number;
}

export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** The `ready` frame: the session herald opened. */
export interface Ready {
  type: "ready";
  id?: string;
  session: string;
  sub?: string;
  roles: string[];
  /** Token expiry, Unix seconds. */
  expires?: number;
}

export interface HeraldEvent<T = unknown> {
  type: "event";
  subject: string;
  /** The NATS payload: JSON as is, else a string; absent when data_b64 is set. */
  data?: T;
  /** Standard base64 of a payload that is neither JSON nor UTF-8. */
  data_b64?: string;
  /** The stream sequence, on events of history-fed subscriptions. */
  seq?: number;
  /** When herald received the message (RFC 3339, UTC, ms). */
  time: string;
}

export interface BackoffOptions {
  /** First retry within [0, baseMs); default 500. */
  baseMs?: number;
  /** Upper bound of every delay; default 30000. */
  maxMs?: number;
}

export interface ConnectOptions {
  /** e.g. "wss://events.example.com/v1/ws" */
  url: string;
  /** A JWT. Without getToken, a 4001 close (expired, refused) is final. */
  token?: string;
  /** Returns a fresh JWT (from your backend); used to connect, after 4001, and to refresh before `exp`. */
  getToken?: () => string | Promise<string>;
  backoff?: BackoffOptions;
  /** Reject a request without a reply after this long (default 10000; 0 = never). */
  requestTimeoutMs?: number;
  /** Consecutive 4001 closes (with getToken) before giving up; default 3. */
  maxAuthFailures?: number;
  /** A WebSocket constructor (default: globalThis.WebSocket). */
  WebSocket?: typeof WebSocket;
  /** Random source in [0, 1) for the jitter (default Math.random). */
  random?: () => number;
}

export interface SubscribeOptions {
  /** Replay after this stream sequence, or "last" for a snapshot (last message per subject). Needs a history stream. */
  since?: number | "last";
  onError?: (err: HeraldError) => void;
  /** Each time the subscription has caught up (at first subscribe and after every reconnect). */
  onSynced?: (seq: number | null) => void;
  /** The stream no longer held what `since` asked for; replay starts at err.firstSeq. */
  onGap?: (err: HeraldError) => void;
}

export interface OkReply { type: "ok"; id?: string; gap?: number }

export interface Subscription {
  readonly subject: string;
  /** Highest stream sequence seen (events and synced), null for core subscriptions. */
  readonly lastSeq: number | null;
  /** The `since` the next (re)subscribe will carry. */
  readonly resumeSince: number | "last" | undefined;
  readonly active: boolean;
  readonly isSynced: boolean;
  /** herald registered the subscription (first `ok`, or a history_gap). */
  readonly ready: Promise<OkReply>;
  /** The snapshot or replay is complete (resolves at `ok` without `since`). */
  readonly synced: Promise<number | null>;
  on(event: "synced", fn: (seq: number | null) => void): () => void;
  on(event: "gap" | "error", fn: (err: HeraldError) => void): () => void;
  off(event: string, fn: (...args: any[]) => void): void;
  unsubscribe(): Promise<void>;
}

export interface ClientStats {
  pending: number; queued: number; subscriptions: number; listeners: number;
  timers: number; socketListeners: number;
}

export declare class HeraldClient {
  readonly url: string;
  readonly state: ConnectionState;
  /** The current session's `ready`, once open. */
  readonly session: Ready | null;
  /** Resolves with the first session; rejects if the client closes first. */
  readonly opened: Promise<Ready>;
  subscribe<T = unknown>(pattern: string, onEvent: (ev: HeraldEvent<T>) => void, opts?: SubscribeOptions): Subscription;
  /**
   * Resolves on herald's `ok`; rejects with a HeraldError (`forbidden`, `invalid_subject`, …).
   * Made while reconnecting, it is sent once the session is open, or rejects
   * with `unavailable` after requestTimeoutMs; a connection lost before the
   * reply also rejects with `unavailable` (outcome unknown).
   */
  publish(subject: string, data: unknown, opts?: { binary?: Uint8Array | ArrayBuffer }): Promise<OkReply>;
  /** Round trip in ms. */
  ping(): Promise<number>;
  /** Close for good. */
  close(): void;
  on(event: "state", fn: (state: ConnectionState, detail?: any) => void): () => void;
  on(event: "error", fn: (err: HeraldError) => void): () => void;
  on(event: "refreshed", fn: (ready: Ready) => void): () => void;
  on(event: "disconnect", fn: (info: { code: number; reason: string; wasAuthed: boolean }) => void): () => void;
  on(event: "dropped", fn: (count: number) => void): () => void;
  off(event: string, fn: (...args: any[]) => void): void;
  listenerCount(): number;
  stats(): ClientStats;
}

export declare function connect(opts: ConnectOptions): HeraldClient;

/** Full-jitter backoff: uniform in [0, min(maxMs, baseMs * 2^attempt)). */
export declare function backoffDelay(attempt: number, opts?: BackoffOptions, random?: () => number): number;
/** NATS subject matching (`*`, `>`). */
export declare function subjectMatches(pattern: string, subject: string): boolean;
/** The `since` of a resubscribe: the last seq seen, else what was asked. */
export declare function resumeSince(lastSeq: number | null, requested: number | "last" | undefined): number | "last" | undefined;
/** Seconds before `exp` at which a token living `lifetimeS` seconds is refreshed. */
export declare function refreshLead(lifetimeS: number): number;
