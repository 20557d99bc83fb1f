/** What Slipway reads from an AWS SDK v3 failure; shared by every S3 user (stores, downloads, releases). */

/** The fields of an SDK error we look at: the SDK throws several classes, and network errors are plain. */
export interface S3SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $fault?: string;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: number };
}

/** `err` viewed as an SDK error (an empty one when it is not an object). */
export function s3SdkError(err: unknown): S3SdkError {
  return typeof err === 'object' && err !== null ? err : {};
}

/** The HTTP status the store answered with, or undefined when no answer came. */
export function s3HttpStatus(err: unknown): number | undefined {
  return s3SdkError(err).$metadata?.httpStatusCode;
}
