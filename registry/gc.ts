// Online garbage collection, with no read-only window. Mark every blob that a manifest revision
// of any repository names; set aside (move to the trash) unmarked blobs older than the grace
// period; mark again, restoring whatever a manifest pushed meanwhile names; then delete what
// stayed in the trash. A push racing with this cannot lose a blob: manifest PUTs check their
// blobs again after their revision is visible (restoring from the trash), and every reader
// restores a trashed blob it needs. Stale uploads and dangling repository links go too.
import { isDigest, type Digest } from '../format/digest.ts';
import type { Registry } from './registry.ts';
import { parsePath, paths } from './store/paths.ts';
import { exists, isNotFound, type FileInfo } from './storage/driver.ts';

export interface GcOptions {
  /** Blobs and uploads younger than this are never touched (milliseconds). */
  gracePeriodMs: number;
  /** Report what would go, change nothing. */
  dryRun?: boolean;
  log?: (event: Record<string, unknown>) => void;
}

export interface GcReport {
  marked: number;
  blobs: Array<{ digest: Digest; size: number }>;
  bytes: number;
  restored: number;
  uploads: string[];
  danglingLinks: number;
  dryRun: boolean;
  seconds: number;
}

async function walkOr(registry: Registry, root: string, fn: (info: FileInfo) => void | Promise<void>): Promise<void> {
  try {
    await registry.driver.walk(root, fn);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** Every blob digest some manifest revision of some repository needs. */
export async function mark(registry: Registry): Promise<Set<Digest>> {
  const marked = new Set<Digest>();
  for (const repo of await registry.repositories()) {
    const revisions: Digest[] = [];
    const dir = paths.manifestRevisions(repo);
    await walkOr(registry, dir, (info) => {
      const digest = parsePath.digestLink(dir, info.path);
      if (digest) revisions.push(digest);
    });
    for (const digest of revisions) {
      marked.add(digest);
      let manifest: { config?: { digest?: string }; layers?: Array<{ digest?: string }>; manifests?: Array<{ digest?: string }> };
      try {
        // A revision's manifest blob may sit in the trash (set aside before the revision became
        // visible): statGlobal brings it back, so the blobs it names are marked too.
        await registry.blobs.statGlobal(digest);
        manifest = JSON.parse((await registry.blobs.getContent(digest)).toString('utf8'));
      } catch (err) {
        if (isNotFound(err)) continue;
        throw err;
      }
      for (const d of [manifest.config?.digest, ...(manifest.layers ?? []).map((l) => l.digest), ...(manifest.manifests ?? []).map((m) => m.digest)]) {
        if (d && isDigest(d)) marked.add(d);
      }
    }
  }
  return marked;
}

export async function collectGarbage(registry: Registry, opts: GcOptions): Promise<GcReport> {
  const started = Date.now();
  const cutoff = started - opts.gracePeriodMs;
  const log = opts.log ?? (() => undefined);
  const report: GcReport = { marked: 0, blobs: [], bytes: 0, restored: 0, uploads: [], danglingLinks: 0, dryRun: Boolean(opts.dryRun), seconds: 0 };

  const marked = await mark(registry);
  report.marked = marked.size;
  const candidates: Array<{ digest: Digest; size: number }> = [];
  await walkOr(registry, paths.blobsRoot(), (info) => {
    const digest = parsePath.blobData(info.path);
    if (!digest) return;
    if (!marked.has(digest) && info.modTime.getTime() < cutoff) candidates.push({ digest, size: info.size });
  });

  const staleUploads: string[] = [];
  for (const repo of await registry.repositories()) {
    await walkOr(registry, paths.uploads(repo), (info) => {
      const upload = parsePath.uploadState(info.path);
      if (upload && info.modTime.getTime() < cutoff) staleUploads.push(paths.upload(upload.repo, upload.id));
    });
  }
  // Uploads whose repository never got a manifest are not in the catalog: find them by walking.
  await walkOr(registry, paths.repositoriesRoot(), (info) => {
    const upload = parsePath.uploadState(info.path);
    if (upload && info.modTime.getTime() < cutoff) {
      const dir = paths.upload(upload.repo, upload.id);
      if (!staleUploads.includes(dir)) staleUploads.push(dir);
    }
  });

  if (opts.dryRun) {
    report.blobs = candidates;
    report.bytes = candidates.reduce((n, c) => n + c.size, 0);
    report.uploads = staleUploads;
    for (const c of candidates) log({ event: 'gc-would-delete', digest: c.digest, size: c.size });
    for (const u of staleUploads) log({ event: 'gc-would-delete-upload', upload: u });
    report.seconds = (Date.now() - started) / 1000;
    return report;
  }

  // Set aside.
  const trashed: Array<{ digest: Digest; size: number }> = [];
  for (const c of candidates) {
    try {
      await registry.driver.putContent(paths.trashMark(c.digest), Buffer.from(new Date().toISOString()));
      await registry.driver.move(paths.blobData(c.digest), paths.trashData(c.digest));
      trashed.push(c);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  // Mark again: what a push made reachable meanwhile comes back.
  const remarked = await mark(registry);
  for (const t of trashed) {
    if (remarked.has(t.digest) && (await registry.blobs.restore(t.digest))) {
      report.restored++;
      log({ event: 'gc-restored', digest: t.digest });
    }
  }
  // Delete what is still in the trash (a reader may have restored some: those are gone from it).
  for (const t of trashed) {
    if (!(await exists(registry.driver, paths.trashData(t.digest)))) continue;
    await registry.driver.delete(paths.trashEntry(t.digest)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    report.blobs.push(t);
    report.bytes += t.size;
    log({ event: 'gc-deleted', digest: t.digest, size: t.size });
  }

  for (const dir of staleUploads) {
    await registry.driver.delete(dir).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    report.uploads.push(dir);
    log({ event: 'gc-deleted-upload', upload: dir });
  }

  // Leftovers of a collection that died between setting aside and deleting.
  const leftovers: Digest[] = [];
  await walkOr(registry, paths.trashRoot(), (info) => {
    const digest = parsePath.trashData(info.path);
    if (digest && info.modTime.getTime() < cutoff) leftovers.push(digest);
  });
  for (const digest of leftovers) {
    if (remarked.has(digest)) {
      if (await registry.blobs.restore(digest)) report.restored++;
      continue;
    }
    await registry.driver.delete(paths.trashEntry(digest)).catch(() => undefined);
    report.blobs.push({ digest, size: 0 });
    log({ event: 'gc-deleted', digest, leftover: true });
  }

  // Repository links to blobs that no longer exist anywhere.
  const deleted = new Set(report.blobs.map((b) => b.digest));
  if (deleted.size) {
    const links: Array<{ repo: string; digest: Digest }> = [];
    await walkOr(registry, paths.repositoriesRoot(), (info) => {
      const link = parsePath.layerLink(info.path);
      // A link written since this collection began belongs to a re-upload: keep it (S3 times
      // have whole seconds, hence the margin; an older dangling link goes in the next run).
      if (link && deleted.has(link.digest) && info.modTime.getTime() < started - 2000) links.push(link);
    });
    for (const { repo, digest } of links) {
      if (await registry.blobs.statGlobal(digest)) continue;
      await registry.driver.delete(paths.layerLinkDir(repo, digest)).catch(() => undefined);
      report.danglingLinks++;
    }
  }
  const abortStale = (registry.driver as { abortStaleUploads?: (olderThan: Date) => Promise<unknown> }).abortStaleUploads;
  // Driver-level leftovers (temp files, multipart uploads) belong to writes in flight until they
  // are old: never younger than an hour, whatever the grace period.
  if (abortStale) await abortStale.call(registry.driver, new Date(started - Math.max(opts.gracePeriodMs, 3_600_000)));
  report.seconds = (Date.now() - started) / 1000;
  return report;
}
