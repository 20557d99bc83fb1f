/**
 * The shared vocabulary of the image repository (specs/imgapi.md): image
 * manifests, list filters and the API's error bodies. Types only; the pure
 * rules live in imgapi.ts, the stores in src/store/, the service in
 * src/images/, the HTTP wiring in src/server/.
 */

export type ImageState = 'active' | 'unactivated' | 'disabled' | 'creating' | 'failed';
export type Compression = 'gzip' | 'bzip2' | 'xz' | 'none';

export interface ImageFile {
  sha1: string;
  size: number;
  compression: Compression;
}

/**
 * A v2 manifest as stored and served. Optional fields beyond these are kept
 * in `extra` order-free; serializeManifest (imgapi.ts) writes the spec's key
 * order.
 */
export interface ImageManifest {
  v: number;
  uuid: string;
  owner: string;
  name: string;
  version: string;
  state: ImageState;
  disabled: boolean;
  public: boolean;
  published_at?: string;
  type: string;
  os: string;
  files: ImageFile[];
  description?: string;
  homepage?: string;
  eula?: string;
  icon?: boolean;
  error?: Record<string, unknown>;
  requirements?: Record<string, unknown>;
  users?: unknown[];
  billing_tags?: string[];
  traits?: Record<string, unknown>;
  generate_passwords?: boolean;
  inherited_directories?: string[];
  origin?: string;
  acl?: string[];
  tags?: Record<string, unknown>;
  nic_driver?: string;
  disk_driver?: string;
  cpu_type?: string;
  image_size?: number;
  channels?: string[];
}

export interface ChannelConfig {
  name: string;
  description: string;
  default?: boolean;
}

/** `name`/`version`: exact, or `~text` for a case-sensitive substring. */
export type TextMatch = { exact: string } | { substring: string };

export type ListState = 'active' | 'disabled' | 'unactivated' | 'all' | 'creating' | 'failed';

export interface ListFilter {
  state: ListState;
  name?: TextMatch;
  version?: TextMatch;
  owner?: string;
  os?: string;
  type?: { value: string; negate: boolean };
  public?: boolean;
  /** `tag.KEY=VALUE`: every pair must match (values compared as strings, as IMGAPI does). */
  tags: [key: string, value: string][];
  /** A channel name, or '*' for all; undefined when the server has no channels. */
  channel?: string;
  /** 1..1000. */
  limit: number;
  /** Inclusive lower bound on published_at (ISO string), from a marker uuid or date. */
  markerPublishedAt?: string;
  /** The marker as given, when it was a uuid (the service resolves it to markerPublishedAt). */
  markerUuid?: string;
  sort: 'asc' | 'desc';
}

/** One error of the API, as sent: `{"code","message"[,"errors"]}` with an HTTP status. */
export interface ImgapiErrorBody {
  code: string;
  message: string;
  errors?: { field: string; code: string; message?: string }[];
}

/** The API's errors carry their HTTP status and REST code (not SlipwayError: they go over the wire). */
export class ImgapiError extends Error {
  readonly statusCode: number;
  readonly restCode: string;
  readonly errors: ImgapiErrorBody['errors'];

  constructor(statusCode: number, restCode: string, message: string, errors?: ImgapiErrorBody['errors']) {
    super(message);
    this.name = 'ImgapiError';
    this.statusCode = statusCode;
    this.restCode = restCode;
    this.errors = errors;
  }

  body(): ImgapiErrorBody {
    return {
      code: this.restCode,
      message: this.message,
      ...(this.errors !== undefined ? { errors: this.errors } : {}),
    };
  }
}

/** What the metadata store keeps per image. */
export interface StoredImage {
  manifest: ImageManifest;
  /** Bumped on every write; updates compare it (optimistic concurrency across server replicas). */
  revision: number;
  /** Where the image file lives in the blob store (unique per upload). */
  fileKey?: string;
  /** base64 md5 of the file (Content-MD5). */
  fileMd5?: string;
  /** Where the icon lives, and its content type. */
  iconKey?: string;
  iconContentType?: string;
}
