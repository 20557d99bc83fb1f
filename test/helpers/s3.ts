/** An S3 client for tests' own set-up and checks against the S3 service (helpers/services.ts). */
import { S3Client } from '@aws-sdk/client-s3';

/** A client for the S3 service described by `env` (s3Env()): path-style, checksums only when required. */
export function testS3Client(env: Record<string, string>): S3Client {
  return new S3Client({
    endpoint: env.S3_ENDPOINT,
    region: env.AWS_REGION ?? 'us-east-1',
    forcePathStyle: true,
    credentials: {
      accessKeyId: env.AWS_ACCESS_KEY_ID ?? '',
      secretAccessKey: env.AWS_SECRET_ACCESS_KEY ?? '',
    },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
