/**
 * The one place where requests and failures become NBD error values (nbdkit: bounds checked
 * once at the boundary; the document's "Error values"): {@link checkRequest} judges a request
 * before anything touches the device, {@link errorValueOf} maps what a device threw.
 *
 * @example
 * ```ts
 * import { checkRequest } from "./nbd_errors.ts";
 * import { nbdCommands, nbdErrors } from "./protocol.ts";
 *
 * const header = { flags: 0, type: nbdCommands.write, cookie: new Uint8Array(8), offsetBytes: 0, lengthBytes: 512 };
 * checkRequest({ header, payloadDiscarded: false }, { sizeBytes: 4096, readOnly: true }) === nbdErrors.permission;
 * ```
 *
 * @module
 */
import { ReadOnlyDeviceError, SECTOR_BYTES } from "../io/block_device.ts";
import { OverlayFullError } from "../io/overlay_block_device.ts";
import { nbdLimits } from "./nbd_limits.ts";
import { type DecodedRequest, nbdCommandFlags, nbdCommands, type NbdError, nbdErrors } from "./protocol.ts";

/** What a check needs to know about the export. */
export interface ExportShape {
  readonly sizeBytes: number;
  readonly readOnly: boolean;
}

/** Command flags each command accepts (FUA is valid on every command once SEND_FUA is sent). */
const allowedFlags: Readonly<Record<number, number>> = {
  [nbdCommands.read]: nbdCommandFlags.fua,
  [nbdCommands.write]: nbdCommandFlags.fua,
  [nbdCommands.flush]: nbdCommandFlags.fua,
  [nbdCommands.trim]: nbdCommandFlags.fua,
  [nbdCommands.writeZeroes]: nbdCommandFlags.fua | nbdCommandFlags.noHole,
};

function isWriting(type: number): boolean {
  return type === nbdCommands.write || type === nbdCommands.trim || type === nbdCommands.writeZeroes;
}

/**
 * Judges a request (other than NBD_CMD_DISC) against the export, before any I/O. Returns
 * {@link nbdErrors.none} when it may run. Per the document: unknown commands and flags not
 * documented for the command → EINVAL; writes and trims on a read-only export → EPERM; a
 * write reaching past the end → ENOSPC; a read past the end or anything not a multiple of
 * the 512-byte minimum block size → EINVAL; a READ or WRITE over the advertised maximum
 * block size → EOVERFLOW.
 */
export function checkRequest(request: DecodedRequest, shape: ExportShape): NbdError {
  const { type, flags, offsetBytes, lengthBytes } = request.header;
  const allowed = allowedFlags[type];
  if (allowed === undefined) return nbdErrors.invalid;
  if ((flags & ~allowed) !== 0) return nbdErrors.invalid;
  if (isWriting(type) && shape.readOnly) return nbdErrors.permission;
  if (type === nbdCommands.flush) {
    return offsetBytes === 0 && lengthBytes === 0 ? nbdErrors.none : nbdErrors.invalid;
  }
  if (request.payloadDiscarded) return nbdErrors.overflow;
  if (type === nbdCommands.read && lengthBytes > nbdLimits.payloadBytesMax) return nbdErrors.overflow;
  if (offsetBytes % SECTOR_BYTES !== 0 || lengthBytes % SECTOR_BYTES !== 0) return nbdErrors.invalid;
  if (offsetBytes + lengthBytes > shape.sizeBytes) {
    return isWriting(type) ? nbdErrors.noSpace : nbdErrors.invalid;
  }
  return nbdErrors.none;
}

/**
 * Maps what the device threw to an error value: a read-only device → EPERM; a scratch
 * overlay at its limit → ENOSPC (the document: "a write ... that ... runs out of space");
 * a range the device refused (it checks too) → EINVAL; anything else is a device failure → EIO.
 */
export function errorValueOf(error: unknown): NbdError {
  if (error instanceof ReadOnlyDeviceError) return nbdErrors.permission;
  if (error instanceof OverlayFullError) return nbdErrors.noSpace;
  if (error instanceof RangeError) return nbdErrors.invalid;
  return nbdErrors.io;
}
