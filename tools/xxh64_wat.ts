/** Assembling `tools/xxh64.wat`, shared by its build script and its test. */
import wabtInit from "wabt";

/** Where the WAT source lives. */
export const xxh64WatUrl = new URL("./xxh64.wat", import.meta.url);

/** The module's binary, as wabt assembles `watText` (validated; no debug names). */
export async function assembleXxh64Wat(watText: string): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const parsed = wabt.parseWat("xxh64.wat", watText);
  try {
    parsed.validate();
    return new Uint8Array(parsed.toBinary({}).buffer);
  } finally {
    parsed.destroy();
  }
}
