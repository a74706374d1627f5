/** What a {@link ConfabClient} reports as events (it is an `EventTarget`). */

import type { ErrorCodeName } from "./codes.js";
import type { ConfabError } from "./errors.js";
import type { Notification, PresenceChange, ReadState, RoomEvent, RoomInfo, Welcome } from "./frames.js";

/**
 * The connection's state:
 * - `connecting`: the first connection (or one after {@link ConfabClient.connect}
 *   was called again) is being set up;
 * - `connected`: WELCOME received; requests are sent at once;
 * - `reconnecting`: the connection dropped (or the first attempt failed) and
 *   the client is waiting out its backoff or trying again; requests wait;
 * - `disconnected`: not connected and not trying (never started, closed by
 *   {@link ConfabClient.close}, logged out, refused for good, or out of attempts).
 */
export type ConnectionState = "connecting" | "connected" | "reconnecting" | "disconnected";

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** While `reconnecting`: the attempt about to be made (1 for the first retry). */
  attempt: number;
  /** While `reconnecting`: how long the client waits before that attempt, in ms. */
  delayMs: number;
  /** Why the connection was lost or the attempt failed, when known. */
  error: ConfabError | undefined;
}

export interface ConnectedDetail {
  welcome: Welcome;
  /** `true` after a reconnect: resumed rooms' missed events (or RESUME_GAPs) follow. */
  reconnected: boolean;
}

export interface DisconnectedDetail {
  /** The protocol CLOSE code, if the server sent CLOSE. */
  code: number | undefined;
  codeName: ErrorCodeName | "UNKNOWN" | undefined;
  /** Why, for humans. */
  message: string;
  /** Whether the client will try to reconnect. */
  willReconnect: boolean;
}

export interface TypingDetail {
  room: number;
  user: number;
  username: string;
  /** `true`: started (or still typing); `false`: stopped or expired. */
  typing: boolean;
}

export interface PresenceDetail {
  room: number;
  /** Every change of one coalescing tick in the room, each user at most once. */
  changes: PresenceChange[];
}

export interface ResumeGapDetail {
  room: number;
  /** Reload the room's history up to this seq; live events continue after it. */
  lastSeq: number;
}

export interface CloseDetail {
  code: number;
  codeName: ErrorCodeName | "UNKNOWN";
  message: string;
}

/** Every event a client dispatches, by type, with its `detail`. */
export interface ConfabEventMap {
  /** The connection state changed. */
  statechange: StateChange;
  /** WELCOME arrived: connected (again). */
  connected: ConnectedDetail;
  /** The connection was lost or closed. */
  disconnected: DisconnectedDetail;
  /**
   * A sequenced room event, live or replayed after a reconnect, in seq
   * order per room. Duplicates (a seq at or below the last seen in the
   * room) are dropped before they get here. Events of kinds newer than
   * this SDK arrive with a numeric `body.kind`.
   */
  roomevent: RoomEvent;
  /** The server could not replay a room's missed events: reload its history up to `lastSeq`. */
  resumegap: ResumeGapDetail;
  /** A notification (live, or unread ones after authenticating); deduplicated by id. */
  notification: Notification;
  /** A room was created that concerns the user. */
  roomannounced: RoomInfo;
  /** Another member started or stopped typing. */
  typing: TypingDetail;
  /** The user's read marker moved on another connection. */
  readmarkermoved: ReadState;
  /** Presence changes of a room's members. */
  presence: PresenceDetail;
  /** The server sent CLOSE; `disconnected` follows. */
  close: CloseDetail;
  /** The server sent something this SDK cannot decode; the connection is dropped and (if allowed) re-established. */
  protocolerror: ConfabError;
}

export type ConfabEventType = keyof ConfabEventMap;

/** The `Event` a client dispatches: the payload is in `detail`. */
export class ConfabEvent<K extends ConfabEventType = ConfabEventType> extends Event {
  constructor(
    type: K,
    readonly detail: ConfabEventMap[K],
  ) {
    super(type);
  }
}
