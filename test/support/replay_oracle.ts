/**
 * The reference: a naive model that replays every write in order onto a byte array. Slow on
 * purpose; every image the engine builds must equal it byte for byte (DESIGN.md, "Tests").
 */
export interface OracleWrite {
  readonly seq: number;
  readonly offsetBytes: number;
  readonly data: Uint8Array;
}

export class ReplayOracle {
  readonly sizeBytes: number;
  /** The base (initial full copy), or zeros. */
  readonly base: Uint8Array;
  readonly writes: OracleWrite[] = [];

  constructor(sizeBytes: number, base?: Uint8Array) {
    this.sizeBytes = sizeBytes;
    this.base = base ?? new Uint8Array(sizeBytes);
  }

  /** The volume after every write with seq <= seqMax. */
  imageAt(seqMax: number): Uint8Array {
    const image = this.base.slice();
    for (const write of this.writes) {
      if (write.seq > seqMax) break;
      image.set(write.data, write.offsetBytes);
    }
    return image;
  }

  /** Forgets writes after `seqMax` (a crash lost them before they became durable). */
  truncateAfter(seqMax: number): void {
    while (this.writes.length > 0 && this.writes[this.writes.length - 1].seq > seqMax) this.writes.pop();
  }
}

/** Index of the first differing byte, or -1. */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : length;
}
