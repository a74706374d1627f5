/**
 * Per-room "last seen seq" bookkeeping (SPEC.md §9): drops duplicate
 * events and gives the resume points sent in HELLO after a reconnect.
 */

import type { ResumePoint } from "./frames.js";

export class SeqTracker {
  private readonly last = new Map<number, number>();

  /** Records an event; `false` means it was already seen (`seq` at or below the room's last): drop it. */
  observe(room: number, seq: number): boolean {
    const last = this.last.get(room);
    if (last !== undefined && seq <= last) return false;
    this.last.set(room, seq);
    return true;
  }

  /** Raises the room's last seen seq to at least `seq`, tracking the room if it was not. */
  raise(room: number, seq: number): void {
    this.last.set(room, Math.max(this.last.get(room) ?? 0, seq));
  }

  /** Sets the room's last seen seq, even lower than before (after RESUME_GAP the server's numbering wins). */
  set(room: number, seq: number): void {
    this.last.set(room, seq);
  }

  /** Stops tracking a room (the user left it, or it terminated). */
  forget(room: number): void {
    this.last.delete(room);
  }

  lastSeen(room: number): number | undefined {
    return this.last.get(room);
  }

  /** One resume point per tracked room, by room id. */
  resumePoints(): ResumePoint[] {
    return [...this.last.entries()].sort(([a], [b]) => a - b).map(([room, after]) => ({ room, after }));
  }
}
