/**
 * Operating errors of the appliance that callers catch and map (the API to HTTP statuses,
 * the NBD server to error codes). Bad arguments use the built-in error types instead.
 */

/** A point that resolves outside what is retained (or to a snapshot that does not exist). */
export class PointUnavailableError extends Error {
  override name = "PointUnavailableError";
  /** The range that is available, as text the user can paste back (`seq:0` .. `seq:812`). */
  readonly available: { readonly from: string; readonly to: string };

  constructor(message: string, available: { from: string; to: string }) {
    super(message);
    this.available = available;
  }
}

/** A named thing (snapshot, volume) that does not exist. */
export class NotFoundError extends Error {
  override name = "NotFoundError";
}

/** A request that conflicts with the current state (a snapshot name in use, a wrong seq). */
export class ConflictError extends Error {
  override name = "ConflictError";
}
