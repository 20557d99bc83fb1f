/**
 * The one error type of Slipway. Every failure a user can meet carries a
 * string-literal `code` (tests assert on it), a message a user can act on,
 * and optionally where the problem is (file:line, archive entry, key).
 */

/** 'input': the user gave us something bad (exit 2); 'failure': we could not do the work (exit 1). */
type Kind = 'input' | 'failure';

export const ERROR_CODES = {
  USAGE: 'input',
  NOT_FOUND: 'input',
  INVALID_ARGUMENT: 'input',
  IO: 'failure',
  INTERNAL: 'failure',
  INTERRUPTED: 'failure',
  // gzip / tar
  GZIP_CORRUPT: 'input',
  GZIP_TRUNCATED: 'input',
  TAR_HEADER_INVALID: 'input',
  TAR_TRUNCATED: 'input',
  TAR_TOO_MANY_ENTRIES: 'input',
  TAR_ENTRY_TOO_LARGE: 'input',
  TAR_TOO_LARGE: 'input',
  TAR_NAME_TOO_LONG: 'input',
  TAR_ENTRY_UNSUPPORTED: 'input',
  // oxide.json and layer rules
  OXIDE_JSON_MISSING: 'input',
  OXIDE_JSON_INVALID: 'input',
  IMAGE_TYPE_MISMATCH: 'input',
  PATH_UNSAFE: 'input',
  PATH_OUTSIDE_ROOT: 'input',
  LINK_UNSAFE: 'input',
  INSTALL_CONFLICT: 'input',
  INSTALL_PARENT_MISSING: 'input',
  INSTALL_ROOT_INVALID: 'input',
  /** A warning: the same path twice in one archive (allowed; the later entry wins). */
  DUPLICATE_ENTRY: 'input',
  WALK_CYCLE: 'input',
  ARCHIVE_CHANGED: 'failure',
  // job graph (src/build/graph.ts)
  GRAPH_DUPLICATE_JOB: 'input',
  GRAPH_UNKNOWN_DEPENDENCY: 'input',
  GRAPH_CYCLE: 'input',
  JOB_FAILED: 'failure',
  JOB_COMMAND_FAILED: 'failure',
  JOB_DEPENDENCY_FAILED: 'failure',
  // package-manifest.toml and other TOML configuration
  MANIFEST_SYNTAX: 'input',
  MANIFEST_INVALID: 'input',
  // tools/*_version and *_checksums files
  VERSION_FILE_INVALID: 'input',
  // prereqs.toml (slipway prereq)
  PREREQ_INVALID: 'input',
  // builds and downloads
  DOWNLOAD_FAILED: 'failure',
  CHECKSUM_MISMATCH: 'failure',
  OFFLINE_MISSING: 'input',
  PACKAGE_INPUT_MISSING: 'input',
  BUILD_FAILED: 'failure',
  // boot images (src/formats/bootimage.ts, src/boot/image.ts)
  BOOTIMAGE_INVALID: 'input',
  BOOTIMAGE_NAME_INVALID: 'input',
  BOOTIMAGE_NAME_TOO_LONG: 'input',
  BOOTIMAGE_TOO_LARGE: 'input',
  BOOTIMAGE_TRUNCATED: 'input',
  BOOTIMAGE_CORRUPT: 'input',
  BOOTIMAGE_CHECKSUM_MISMATCH: 'input',
  // network boot (src/formats/netboot.ts, src/boot/netboot-*.ts)
  /** A bad MAC address, interface or option for a netboot server or client. */
  NETBOOT_INVALID_OPTION: 'input',
  /** The server only serves uncompressed boot images (like the reference). */
  NETBOOT_IMAGE_COMPRESSED: 'input',
  /** No client said HELLO within the server's wait time. */
  NETBOOT_NO_CLIENT: 'failure',
  /** The client got no acceptable OFFER, or the transfer did not finish, in time. */
  NETBOOT_TIMEOUT: 'failure',
  /** The server answered RESET; the client gave up. */
  NETBOOT_RESET: 'failure',
  /** The received image's sha256 differs from the expected checksum. */
  NETBOOT_CHECKSUM_MISMATCH: 'failure',
  /** Raw Ethernet I/O is not available (no capture library, no permission, no interface). */
  NETBOOT_LINK_UNAVAILABLE: 'failure',
  // TUF metadata and verification (src/formats/tuf)
  /** Metadata that is not valid JSON, too large, or missing/mistyped fields. */
  TUF_METADATA_INVALID: 'input',
  /** `_type` is not the role expected at that place. */
  TUF_WRONG_TYPE: 'input',
  /** Fewer distinct valid signatures from the role's keys than its threshold. */
  TUF_THRESHOLD_NOT_MET: 'input',
  /** A role's `expires` is in the past (by the injected clock). */
  TUF_EXPIRED: 'input',
  /** A version lower than the trusted one (rollback) or not the one the parent lists. */
  TUF_ROLLBACK: 'input',
  TUF_VERSION_MISMATCH: 'input',
  /** A file's length or hash differs from what its parent role lists. */
  TUF_LENGTH_MISMATCH: 'input',
  TUF_HASH_MISMATCH: 'input',
  /** A target that the targets role does not list. */
  TUF_TARGET_UNKNOWN: 'input',
  /** A key that is not a valid ed25519 key (or key string). */
  TUF_KEY_INVALID: 'input',
  // zip archives (src/archive/zip*.ts)
  ZIP_INVALID: 'input',
  /** A zip entry that is a directory, absolute, has `..`, or lies outside `repo/`. */
  ZIP_PATH_UNSAFE: 'input',
  ZIP_UNSUPPORTED: 'input',
  ZIP_TOO_LARGE: 'input',
  // update repositories (src/formats/repo-manifest.ts, src/repo)
  REPO_MANIFEST_INVALID: 'input',
  /** artifacts.json missing, malformed, or naming a target that is absent. */
  REPO_ARTIFACTS_INVALID: 'input',
  /** A second artifact with the same (kind, hash), or a second host/trampoline/control_plane. */
  REPO_DUPLICATE_ARTIFACT: 'input',
  REPO_MISSING_KIND: 'input',
  /** A composite artifact whose content breaks its kind's rules (t=os with image/zfs.img, zones t=layer…). */
  REPO_ARTIFACT_CONTENT: 'input',
  /** A different repository already claims this system version (upload server). */
  REPO_CONFLICT: 'input',
  REPO_LAYOUT_INVALID: 'input',
  /** An uploaded repository larger than the server's cap (`--max-upload`); HTTP 413. */
  REPO_UPLOAD_TOO_LARGE: 'input',
  /** The client stopped sending before the whole body arrived (disconnect, short body). */
  REPO_UPLOAD_INCOMPLETE: 'input',
  /** The upload store's index.json is unreadable or inconsistent with repos/. */
  REPO_STORE_INVALID: 'failure',
  // image repository (IMGAPI; src/images, src/cli/images.ts)
  /** An SSH public or private key that cannot be used for HTTP Signature auth (names the file/line). */
  IMAGES_KEY_INVALID: 'input',
  /** The image repository answered with an error (the message has the HTTP status and `code: message`). */
  IMAGES_API_ERROR: 'failure',
  /** The image repository could not be reached (connection refused, DNS, TLS, timeout). */
  IMAGES_UNREACHABLE: 'failure',
  // OCI
  /** An OCI manifest, index, config, descriptor, digest, platform or reference that is malformed (names the JSON path). */
  OCI_INVALID: 'input',
  /** A registry's WWW-Authenticate header that cannot be parsed. */
  OCI_AUTH_CHALLENGE_INVALID: 'input',
  /** An OCI image layout on disk that is malformed: oci-layout, index.json, a missing blob or one whose bytes do not match its name. */
  OCI_LAYOUT_INVALID: 'input',
  /** A rootfs source for `oci build` that cannot be used (not a directory, tarball or layer archive; unsafe entry). */
  OCI_ROOTFS_INVALID: 'input',
  /** A reference, tag or platform that is not in the layout or registry. */
  OCI_NOT_FOUND: 'input',
  /** Credentials that cannot be read (auth file malformed, --creds without a colon). */
  OCI_CREDENTIALS_INVALID: 'input',
  /** The registry (or its token server) refused the credentials: a repeated 401 names the registry and scope. */
  OCI_AUTH_FAILED: 'input',
  /** The token server granted fewer actions than the operation needs (insufficient_scope). */
  OCI_INSUFFICIENT_SCOPE: 'input',
  /** The registry answered with an error (the message has the HTTP status, method, URL and the registry's code). */
  OCI_REGISTRY_ERROR: 'failure',
  /** The registry could not be reached after retries (connection refused/reset, DNS, TLS, timeout). */
  OCI_UNREACHABLE: 'failure',
  /** Content from a registry or layout whose digest or size differs from its descriptor. */
  OCI_DIGEST_MISMATCH: 'failure',
  // release process (src/release, src/cli/release.ts)
  /** release.toml or the version file is invalid (names file:line and key). */
  RELEASE_CONFIG_INVALID: 'input',
  /** A release-note fragment with bad front matter (names the fragment and key). */
  RELEASE_NOTES_INVALID: 'input',
  /** A release-note fragment credits an author missing from the authors file. */
  RELEASE_UNKNOWN_AUTHOR: 'input',
  /** The git working tree has uncommitted changes where a clean tree is required. */
  RELEASE_DIRTY_TREE: 'input',
  /** build/upload run when HEAD is not the release tag (`git describe --tags` differs from VERSION). */
  RELEASE_NOT_ON_TAG: 'input',
  /** The release tag exists already (use --force-tag to replace it). */
  RELEASE_TAG_EXISTS: 'input',
  /** An unknown environment name, or one missing what the step needs. */
  RELEASE_ENV_INVALID: 'input',
  /** A production upload without the typed confirmation phrase. */
  RELEASE_NOT_CONFIRMED: 'input',
  /** A git command failed (the message has the command and its stderr). */
  RELEASE_GIT_FAILED: 'failure',
  /** A build command or job failed, or did not produce a declared artifact. */
  RELEASE_BUILD_FAILED: 'failure',
  /** Object storage refused the credentials (403/InvalidAccessKeyId/SignatureDoesNotMatch). */
  RELEASE_S3_AUTH: 'input',
  /** An upload to object storage failed after retries, or an object's stored sha256 differs after upload. */
  RELEASE_UPLOAD_FAILED: 'failure',
  /** A build output directory that does not hold a complete release (missing manifest, file or checksum). */
  RELEASE_BUILD_INVALID: 'input',
} as const satisfies Record<string, Kind>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface SlipwayErrorOptions {
  cause?: unknown;
  /** Where the problem is: a file, file:line, archive:entry, or a config key. */
  where?: string;
}

export class SlipwayError extends Error {
  readonly code: ErrorCode;
  readonly where: string | undefined;

  constructor(code: ErrorCode, message: string, options: SlipwayErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SlipwayError';
    this.code = code;
    this.where = options.where;
  }

  get kind(): Kind {
    return ERROR_CODES[this.code];
  }

  /** 2 for bad input, 1 for failures. */
  get exitCode(): 1 | 2 {
    return this.kind === 'input' ? 2 : 1;
  }
}

export function isSlipwayError(err: unknown, code?: ErrorCode): err is SlipwayError {
  return err instanceof SlipwayError && (code === undefined || err.code === code);
}

/** Wraps a Node system error (ENOENT, EACCES, …) into a SlipwayError naming the path. */
export function fromSystemError(err: unknown, action: string, path: string): SlipwayError {
  if (err instanceof SlipwayError) return err;
  const e = err as NodeJS.ErrnoException;
  const reason = e.code === 'ENOENT' ? 'no such file or directory' : e.message || String(err);
  const code = e.code === 'ENOENT' ? 'NOT_FOUND' : 'IO';
  return new SlipwayError(code, `${action} '${path}': ${reason}`, { cause: err, where: path });
}

/** `error[CODE]: where: message`, plus the cause chain and stack with debug. */
export function renderError(err: unknown, debug = false): string {
  if (err instanceof SlipwayError) {
    const where = err.where !== undefined && !err.message.includes(err.where) ? `${err.where}: ` : '';
    let out = `error[${err.code}]: ${where}${err.message}`;
    if (debug) {
      out += `\n${err.stack ?? ''}`;
      let cause: unknown = err.cause;
      while (cause !== undefined && cause !== null) {
        out += `\ncaused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : JSON.stringify(cause)}`;
        cause = cause instanceof Error ? cause.cause : undefined;
      }
    }
    return out;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `error[INTERNAL]: ${message}${debug && err instanceof Error ? `\n${err.stack ?? ''}` : ''}`;
}

export function exitCodeOf(err: unknown): number {
  return err instanceof SlipwayError ? err.exitCode : 1;
}
