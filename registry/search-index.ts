// Search's view of the catalog, kept in memory: for each template, what a search result shows of
// its latest version and the names of the packages in it, so that a search filters memory
// instead of reading and parsing every template's summary.
//
// Kept current with the change markers (catalog-changes.ts): each search reads the catalog's
// marker (one small read); while it is the one the index was built under, the index is whole.
// When it differs, the index is rebuilt, reading each template's stamp and reloading only the
// templates whose stamp changed. A change finished through any instance is therefore in the next
// search on every instance. What bypassed the markers (a crash between a change and its marker,
// an older registry version writing the same storage) is picked up when the index is older than
// maxAgeMs: then every template is reloaded.
import { mapBounded } from '../common/bounded.ts';
import type { ChangeMarkers } from './catalog-changes.ts';

interface Loaded<T> {
  stamp: string;
  /** undefined: a repository without versions, not a template. */
  template: T | undefined;
}

interface Snapshot<T> {
  marker: string;
  /** When every template was last loaded from storage (not only checked by stamp). */
  fullAt: number;
  byRepo: Map<string, Loaded<T>>;
  templates: T[];
  /** Order of starting, so that a rebuild started earlier never replaces a later one. */
  seq: number;
}

export interface SearchIndexOptions<T> {
  markers: ChangeMarkers;
  /** Repository names, sorted. */
  repositories: () => Promise<string[]>;
  /** A template as it is in storage now; undefined for a repository without versions. */
  load: (repo: string) => Promise<T | undefined>;
  maxAgeMs: number;
  /** Stamps and templates read at once during a rebuild. */
  concurrency: number;
}

/** What search keeps of each template (T: the catalog's choice), current as the header says. */
export class SearchIndex<T> {
  private readonly opts: SearchIndexOptions<T>;
  private snapshot: Snapshot<T> | undefined;
  private rebuilding: { marker: string; done: Promise<Snapshot<T>> } | undefined;
  private seq = 0;
  constructor(opts: SearchIndexOptions<T>) {
    this.opts = opts;
  }

  /** Every template, by repository name, as of this call. */
  async templates(): Promise<readonly T[]> {
    const marker = await this.opts.markers.catalog();
    const current = this.snapshot;
    const fresh = current && Date.now() - current.fullAt < this.opts.maxAgeMs ? current : undefined;
    if (fresh && fresh.marker === marker) return fresh.templates;
    // A rebuild that read this same marker read everything after it: as good as one of our own.
    if (this.rebuilding?.marker === marker) return (await this.rebuilding.done).templates;
    const done = this.rebuild(marker, fresh);
    this.rebuilding = { marker, done };
    try {
      const built = await done;
      if (!this.snapshot || this.snapshot.seq < built.seq) this.snapshot = built;
      return built.templates;
    } finally {
      if (this.rebuilding?.done === done) this.rebuilding = undefined;
    }
  }

  /** Reads the stamps, and reloads what changed since `previous` (everything without one). */
  private async rebuild(marker: string, previous: Snapshot<T> | undefined): Promise<Snapshot<T>> {
    const seq = ++this.seq;
    const fullAt = previous?.fullAt ?? Date.now();
    const repos = await this.opts.repositories();
    const loaded = await mapBounded(repos, this.opts.concurrency, async (repo): Promise<Loaded<T>> => {
      const stamp = await this.opts.markers.template(repo);
      const held = previous?.byRepo.get(repo);
      if (held && held.stamp === stamp) return held;
      return { stamp, template: await this.opts.load(repo) };
    });
    const byRepo = new Map(repos.map((repo, i) => [repo, loaded[i]!]));
    const templates = loaded.flatMap((l) => (l.template ? [l.template] : []));
    return { marker, fullAt, byRepo, templates, seq };
  }
}
