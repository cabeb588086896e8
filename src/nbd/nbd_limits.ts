/**
 * Every limit of the NBD server in one place (TigerBeetle: "put a limit on everything").
 * Relations between them are asserted at load.
 */
import { assert } from "../core/assert.ts";
import { limits } from "../core/limits.ts";
import { SECTOR_BYTES } from "../io/block_device.ts";

export const nbdLimits = {
  /**
   * Option data the server buffers (GO/INFO carry a name of at most 4096 bytes plus info
   * requests; anything longer is discarded as it streams in and answered with an error).
   */
  optionDataBytesMax: 64 * 1024,
  /** Options one connection may send before the server hangs up (a client spinning forever). */
  optionsPerConnectionMax: 4096,
  /** Export names: the NBD document says a string MUST be no longer than 4096 bytes. */
  exportNameBytesMax: 4096,
  /** Exports listed by NBD_OPT_LIST. */
  listedExportsMax: 4096,
  /** Advertised NBD_INFO_BLOCK_SIZE minimum: the device's sector. */
  blockBytesMin: SECTOR_BYTES,
  /** Advertised NBD_INFO_BLOCK_SIZE preferred size. */
  blockBytesPreferred: 4096,
  /**
   * Advertised NBD_INFO_BLOCK_SIZE maximum: the largest READ or WRITE payload. A WRITE
   * header announcing more is answered with EOVERFLOW while its payload is discarded as it
   * streams in, never buffered.
   */
  payloadBytesMax: limits.writeBytesMax,
  /** Requests one connection may have in flight; the socket is not read while at the limit. */
  requestsInFlightMax: 64,
  /**
   * Payload bytes (READ lengths plus WRITE payloads) one connection may have in flight; a
   * request past it waits unless nothing is in flight (so one maximal request always runs).
   */
  requestBytesInFlightMax: 16 * 1024 * 1024,
  /**
   * Connections in transmission (an export chosen) at once; one more is refused its
   * NBD_OPT_GO with a message (NBD_OPT_EXPORT_NAME, which has no error reply, is hung up on).
   * With the window above it bounds the payload the server holds: 32 × 16 MiB = 512 MiB.
   */
  connectionsServedMax: 32,
  /**
   * Idle payload and READ buffers the server keeps for reuse (all connections together):
   * two connections' full in-flight windows, so steady traffic allocates nothing.
   */
  bufferPoolRetainedBytesMax: 32 * 1024 * 1024,
  /**
   * Replies of at least this many bytes are sent on their own; smaller ones that finish
   * while a send is in flight are batched into the next send (one system call for many).
   */
  replyBatchBytesMax: 64 * 1024,
  /** WRITE_ZEROES writes zeros in pieces of this size (one shared buffer of zeros). */
  zeroChunkBytes: 1024 * 1024,
} as const;

assert(nbdLimits.payloadBytesMax % nbdLimits.blockBytesPreferred === 0, "The maximum is a multiple of the preferred");
assert(nbdLimits.blockBytesPreferred % nbdLimits.blockBytesMin === 0, "The preferred is a multiple of the minimum");
assert(nbdLimits.requestBytesInFlightMax >= nbdLimits.payloadBytesMax, "One maximal request fits the window");
assert(nbdLimits.bufferPoolRetainedBytesMax >= nbdLimits.requestBytesInFlightMax, "A full window of buffers is kept");
assert(nbdLimits.zeroChunkBytes % SECTOR_BYTES === 0, "Zero chunks are whole sectors");
assert(nbdLimits.optionDataBytesMax >= 4 + nbdLimits.exportNameBytesMax + 2, "A GO with a maximal name fits");
