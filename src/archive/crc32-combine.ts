/**
 * crc32_combine: the CRC-32 of A‖B from crc(A), crc(B) and len(B), without
 * touching the bytes again. zlib has this (crc32_combine), but Node does not
 * expose it, so it is written here by hand after zlib 1.2.12+'s version:
 * appending len(B) zero bytes to A multiplies crc(A) by x^(8·len(B)) modulo
 * the CRC polynomial, and that power is built from a table of x^(2^k).
 * Every value is a 32-bit polynomial in reflected bit order (bit 31 = x^0).
 */

import { SlipwayError } from '../core/errors.js';

/** The CRC-32 (IEEE 802.3, gzip) polynomial, reflected. */
const POLY = 0xedb88320;

/** a·b modulo POLY. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  let bb = b >>> 0;
  for (;;) {
    if ((a & m) !== 0) {
      p ^= bb;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    bb = (bb & 1) !== 0 ? (bb >>> 1) ^ POLY : bb >>> 1;
  }
  return p >>> 0;
}

/** X2N[k] = x^(2^k) modulo POLY. */
const X2N: readonly number[] = (() => {
  const t: number[] = [];
  let p = 0x40000000; // x^1
  t.push(p);
  for (let k = 1; k < 32; k++) {
    p = multModP(p, p);
    t.push(p);
  }
  return t;
})();

/** x^(n·2^k) modulo POLY; n may exceed 2^32, so it is halved arithmetically, not shifted. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  let rest = n;
  let i = k;
  while (rest > 0) {
    if (rest % 2 === 1) p = multModP(X2N[i & 31] ?? 0, p);
    rest = Math.floor(rest / 2);
    i++;
  }
  return p;
}

/**
 * The operator that appends `len2` bytes: pass it to crc32CombineOp. Worth
 * precomputing when many pieces have the same length (fixed-size blocks).
 */
export function crc32CombineGen(len2: number): number {
  return x2nModP(len2, 3);
}

/** crc32_combine_op: combine with an operator from crc32CombineGen. */
export function crc32CombineOp(crc1: number, crc2: number, op: number): number {
  return (multModP(op, crc1 >>> 0) ^ crc2) >>> 0;
}

/** CRC-32 of A‖B given crc1 = crc(A), crc2 = crc(B), len2 = len(B) (a safe integer ≥ 0). */
export function crc32Combine(crc1: number, crc2: number, len2: number): number {
  if (!Number.isSafeInteger(len2) || len2 < 0) {
    throw new SlipwayError('INTERNAL', `crc32Combine: length must be a safe integer >= 0, got ${len2}`);
  }
  return crc32CombineOp(crc1, crc2, crc32CombineGen(len2));
}
