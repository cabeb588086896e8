/**
 * The `Transport` seam: byte-stream connections, TCP in `targets/`, in-process in `src/io/`.
 * Framing lives above it (the wire protocol, NBD). Shaped after nats.js's transport: the
 * core never sees a socket.
 */
export interface Connection extends AsyncIterable<Uint8Array> {
  /** Where the other end is, for logs (`127.0.0.1:7300`, `inproc:switch-1`). */
  readonly remoteAddress: string;
  /**
   * Sends the chunks in order. The caller may reuse the buffers only after the promise
   * resolves (the in-process transport passes them by reference).
   */
  send(chunks: Uint8Array | readonly Uint8Array[]): Promise<void>;
  /** Closes both directions; pending iteration ends. */
  close(): Promise<void>;
}

/** A listening endpoint. */
export interface Listener extends AsyncIterable<Connection> {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: string;
  close(): Promise<void>;
}

/** Opens connections to `HOST:PORT` (or an in-process name) and listens on them. */
export interface Transport {
  connect(address: string): Promise<Connection>;
  listen(address: string): Promise<Listener>;
}
