// An admin S3 client for tests (buckets, cleanup, checking what landed), separate from the
// product's driver so a test reads the bucket independently of the code under test.
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
  type MultipartUpload,
} from '@aws-sdk/client-s3';
import type { S3TestEnv } from './s3-env.ts';

export function adminClient(e: Pick<S3TestEnv, 'endpoint' | 'accessKeyId' | 'secretAccessKey' | 'region'>): S3Client {
  return new S3Client({
    endpoint: e.endpoint,
    region: e.region,
    forcePathStyle: true,
    credentials: { accessKeyId: e.accessKeyId, secretAccessKey: e.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

export async function listUploads(client: S3Client, Bucket: string, Prefix?: string): Promise<MultipartUpload[]> {
  const out = await client.send(new ListMultipartUploadsCommand({ Bucket, Prefix }));
  return out.Uploads ?? [];
}

/** Deletes every object and multipart upload under a prefix (the whole bucket for ''). */
export async function emptyPrefix(client: S3Client, Bucket: string, Prefix = ''): Promise<void> {
  for (;;) {
    const out = await client.send(new ListObjectsV2Command({ Bucket, Prefix: Prefix || undefined }));
    const keys = (out.Contents ?? []).flatMap((c) => (c.Key ? [{ Key: c.Key }] : []));
    if (!keys.length) break;
    await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys, Quiet: true } }));
  }
  for (const u of await listUploads(client, Bucket, Prefix || undefined)) {
    await client.send(new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId }));
  }
}
