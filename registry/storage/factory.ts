// The driver a registry configuration asks for: fs:DIR (the embedded default) or
// s3://BUCKET[/PREFIX] with the s3 settings on top of the AWS SDK's own sources.
import type { RegistryConfig } from '../config.ts';
import type { StorageDriver } from './driver.ts';

export async function createDriver(config: Pick<RegistryConfig, 'storage' | 's3'>): Promise<StorageDriver> {
  if (config.storage.startsWith('fs:')) {
    const { FsDriver } = await import('./fs.ts');
    return new FsDriver({ root: config.storage.slice('fs:'.length) });
  }
  const url = new URL(config.storage);
  const { S3Driver } = await import('./s3.ts');
  return new S3Driver({
    bucket: url.hostname,
    prefix: url.pathname.replace(/^\/+/, ''),
    endpoint: config.s3.endpoint,
    region: config.s3.region,
    forcePathStyle: config.s3.pathStyle,
    presignRedirects: config.s3.redirect,
  });
}
