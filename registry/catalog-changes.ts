// Change markers of the template catalog: what lets each registry instance keep search's answers
// in memory and still see every change made through any instance on the same storage.
//
// After a template's catalog state changes (a version published or deleted, a signature added
// or removed), whoever changed it writes a fresh random stamp for the template, then a fresh
// random marker for the whole catalog. A reader reads the marker first, then the stamps, then
// what they describe. So a reader that finds the marker it saw last holds every change that had
// finished when it asked (each change writes the marker after its data), and a template whose
// stamp it holds was read no earlier than that stamp's write (a later state comes with a later
// stamp). Random values rather than counters: concurrent writers need no coordination, and no
// write repeats an earlier one.
//
// A marker or stamp that was never written (a crash between the change and its marker, an
// instance of an older version on the same storage) leaves a reader stale until it reloads
// anyway: SearchIndex bounds that with its maximum age.
import { randomBytes } from 'node:crypto';
import { contentIfPresent, type StorageDriver } from './storage/driver.ts';

/** Beside the catalog's records (repository names have no component starting with '_'). */
export const changePaths = {
  catalog: '/v2/_templates/_changed',
  template: (repo: string) => `/v2/_templates/${repo}/_changed`,
};

export class ChangeMarkers {
  private readonly driver: StorageDriver;
  constructor(driver: StorageDriver) {
    this.driver = driver;
  }

  /** After `repo`'s catalog state changed: its stamp, then the catalog's marker. */
  async changed(repo: string): Promise<void> {
    // Not fsynced: a marker lost in a crash costs staleness that the readers' maximum age bounds.
    await this.driver.putContent(changePaths.template(repo), fresh(), { durable: false });
    await this.driver.putContent(changePaths.catalog, fresh(), { durable: false });
  }

  /** The catalog's marker; '' before the first change. */
  catalog(): Promise<string> {
    return this.read(changePaths.catalog);
  }

  /** The template's stamp; '' before its first change. */
  template(repo: string): Promise<string> {
    return this.read(changePaths.template(repo));
  }

  private async read(path: string): Promise<string> {
    return (await contentIfPresent(this.driver, path))?.toString('latin1') ?? '';
  }
}

function fresh(): Buffer {
  return Buffer.from(randomBytes(12).toString('base64url'), 'latin1');
}
