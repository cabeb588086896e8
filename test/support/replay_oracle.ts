/**
 * The reference: a naive model that replays every write in order onto a byte array. Slow on
 * purpose; every image the engine builds must equal it byte for byte (DESIGN.md, "Tests").
 *
 * A restore (seed 003 [0075]) is replayed as literally as a write: at its seq the state
 * becomes the state after its `toSeq`, computed by replaying again from the base (which may
 * meet earlier restores, replayed the same way). Nothing is shared with the engine's maps.
 */
export interface OracleWrite {
  readonly seq: number;
  readonly offsetBytes: number;
  readonly data: Uint8Array;
}

/** "From `seq` on the state is the state after `toSeq`" (`toSeq < seq`). */
export interface OracleRestore {
  readonly seq: number;
  readonly toSeq: number;
}

export class ReplayOracle {
  readonly sizeBytes: number;
  /** The base (initial full copy), or zeros. */
  readonly base: Uint8Array;
  readonly writes: OracleWrite[] = [];
  /** Restore markers, ascending by seq. */
  readonly restores: OracleRestore[] = [];
  /** The state after each restore's seq, by that seq (replays are repeated otherwise). */
  readonly #restoredStates = new Map<number, Uint8Array>();

  constructor(sizeBytes: number, base?: Uint8Array) {
    this.sizeBytes = sizeBytes;
    this.base = base ?? new Uint8Array(sizeBytes);
  }

  /** Records a restore marker at `seq` to the state after `toSeq`. */
  restore(seq: number, toSeq: number): void {
    if (!(toSeq < seq)) throw new RangeError(`A restore at seq ${seq} must name an earlier seq, not ${toSeq}`);
    this.restores.push({ seq, toSeq });
  }

  /** The volume after every write and restore with seq <= seqMax, in seq order. */
  imageAt(seqMax: number): Uint8Array {
    let image: Uint8Array = this.base.slice();
    let restoreNext = 0;
    const restores = this.restores;
    for (const write of this.writes) {
      if (write.seq > seqMax) break;
      while (restoreNext < restores.length && restores[restoreNext].seq < write.seq) {
        image = this.#stateAfterRestore(restores[restoreNext++]);
      }
      image.set(write.data, write.offsetBytes);
    }
    while (restoreNext < restores.length && restores[restoreNext].seq <= seqMax) {
      image = this.#stateAfterRestore(restores[restoreNext++]);
    }
    return image;
  }

  /** Forgets writes and restores after `seqMax` (a crash lost them before they became durable). */
  truncateAfter(seqMax: number): void {
    while (this.writes.length > 0 && this.writes[this.writes.length - 1].seq > seqMax) this.writes.pop();
    while (this.restores.length > 0 && this.restores[this.restores.length - 1].seq > seqMax) {
      this.#restoredStates.delete(this.restores.pop()!.seq);
    }
  }

  /** A fresh copy of the state after `restore` (the state after its `toSeq`). */
  #stateAfterRestore(restore: OracleRestore): Uint8Array {
    let state = this.#restoredStates.get(restore.seq);
    if (state === undefined) {
      state = this.imageAt(restore.toSeq);
      this.#restoredStates.set(restore.seq, state);
    }
    return state.slice();
  }
}

/** Index of the first differing byte, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}
