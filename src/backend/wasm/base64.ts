// Base64 for embedding binary modules in TypeScript (atob/btoa exist in Deno, Node and browsers).

/**
 * Encodes bytes as standard base64 (with padding).
 *
 * @example
 * ```ts
 * import { encodeBase64 } from "./base64.ts";
 * encodeBase64(new Uint8Array([0, 97, 115, 109])); // "AGFzbQ==" (the WebAssembly magic)
 * ```
 */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/**
 * Decodes standard base64 into bytes.
 *
 * @example
 * ```ts
 * import { decodeBase64 } from "./base64.ts";
 * decodeBase64("AGFzbQ=="); // Uint8Array [0, 97, 115, 109]
 * ```
 */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
