/**
 * The `Random` seam: every source of randomness that matters (fault injection, test data,
 * nonces in simulation) comes through here so a seed reproduces a run.
 */
export interface Random {
  /** A uniformly distributed integer in [0, 2^32). */
  nextUint32(): number;
}

/**
 * A small, fast seeded generator (sfc32), for simulation and tests. Not for secrets: use
 * `crypto.getRandomValues` for those.
 *
 * @example
 * ```ts
 * const random = new SeededRandom(42);
 * const die = randomInt(random, 1, 6);
 * ```
 */
export class SeededRandom implements Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.nextUint32();
  }

  nextUint32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }
}

/** A uniformly distributed integer in [min, max] (inclusive). */
export function randomInt(random: Random, min: number, max: number): number {
  const span = max - min + 1;
  if (span <= 0x1_0000_0000) return min + (random.nextUint32() % span);
  const high = random.nextUint32() * 0x1_0000_0000 + random.nextUint32();
  return min + (high % span);
}

/** Fills `target` with pseudo-random bytes. */
export function fillRandom(random: Random, target: Uint8Array): void {
  let i = 0;
  for (; i + 4 <= target.length; i += 4) {
    const v = random.nextUint32();
    target[i] = v;
    target[i + 1] = v >>> 8;
    target[i + 2] = v >>> 16;
    target[i + 3] = v >>> 24;
  }
  for (; i < target.length; i++) target[i] = random.nextUint32();
}
