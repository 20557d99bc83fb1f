/**
 * oxide.json: the first entry of every Oxide image archive (specs/layers.md).
 * Pure parse/validate/encode.
 */
import { SlipwayError } from '../core/errors.js';

export const IMAGE_TYPES = ['layer', 'baseline', 'os', 'control_plane', 'rot'] as const;
export type ImageType = (typeof IMAGE_TYPES)[number];

export interface OxideJson {
  v: '1';
  t: ImageType;
  pkg?: string;
  version?: string;
  i?: Record<string, string>;
}

/** oxide.json is a few dozen bytes; anything past this is hostile. */
export const OXIDE_JSON_MAX_BYTES = 64 * 1024;

export function isImageType(t: unknown): t is ImageType {
  return typeof t === 'string' && (IMAGE_TYPES as readonly string[]).includes(t);
}

export function parseOxideJson(bytes: Uint8Array, where = 'oxide.json'): OxideJson {
  const fail = (msg: string): never => {
    throw new SlipwayError('OXIDE_JSON_INVALID', msg, { where });
  };
  if (bytes.length > OXIDE_JSON_MAX_BYTES)
    fail(`oxide.json is ${bytes.length} bytes, over ${OXIDE_JSON_MAX_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return fail('oxide.json is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return fail(`oxide.json is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return fail('oxide.json is not a JSON object');
  const obj = value as Record<string, unknown>;
  if (obj.v !== '1') fail(`oxide.json: "v" must be the string "1", found ${JSON.stringify(obj.v)}`);
  if (!isImageType(obj.t)) {
    fail(`oxide.json: "t" must be one of ${IMAGE_TYPES.join(', ')}; found ${JSON.stringify(obj.t)}`);
  }
  const out: OxideJson = { v: '1', t: obj.t as ImageType };
  for (const key of ['pkg', 'version'] as const) {
    const v = obj[key];
    if (v !== undefined) {
      if (typeof v !== 'string') fail(`oxide.json: "${key}" must be a string`);
      out[key] = v as string;
    }
  }
  if (obj.i !== undefined) {
    if (typeof obj.i !== 'object' || obj.i === null || Array.isArray(obj.i))
      fail('oxide.json: "i" must be an object');
    const i: Record<string, string> = {};
    for (const [k, v] of Object.entries(obj.i as Record<string, unknown>)) {
      if (k.length < 3) fail(`oxide.json: key "i.${k}" is shorter than 3 characters`);
      if (typeof v !== 'string') fail(`oxide.json: "i.${k}" must be a string`);
      i[k] = v as string;
    }
    out.i = i;
  }
  return out;
}

/**
 * oxide.json as omicron-package writes it: `{"v":"1","t":…,"pkg":…,"version":…}`,
 * keys in that order, compact, no trailing newline.
 */
export function encodeOmicronOxideJson(t: ImageType, pkg: string, version: string): Buffer {
  return Buffer.from(
    `{"v":"1","t":${JSON.stringify(t)},"pkg":${JSON.stringify(pkg)},"version":${JSON.stringify(version)}}`,
  );
}

/** oxide.json as the brand and tufaceous write it: compact JSON followed by a newline. */
export function encodeOxideJson(value: OxideJson): Buffer {
  const ordered: Record<string, unknown> = { v: value.v, t: value.t };
  if (value.pkg !== undefined) ordered.pkg = value.pkg;
  if (value.version !== undefined) ordered.version = value.version;
  if (value.i !== undefined) ordered.i = value.i;
  return Buffer.from(`${JSON.stringify(ordered)}\n`);
}
