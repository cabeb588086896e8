/**
 * The `DurableCell` seam: a small value replaced atomically and durably (the DRL bitmap,
 * checkpoints). After a crash `read` returns the last value whose `write` resolved, or an
 * older one if the crash came before that write resolved; never a mix.
 */
export interface DurableCell {
  read(): Promise<Uint8Array | null>;
  write(bytes: Uint8Array): Promise<void>;
}
