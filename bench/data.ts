// Locates ../shared/data beside the repo, whether a bench runs from source or from dist/.

import { existsSync } from 'node:fs';

export function sharedDataDir(): URL {
  for (const rel of ['../../shared/data/', '../../../shared/data/', '../../../../shared/data/']) {
    const u = new URL(rel, import.meta.url);
    if (existsSync(new URL('MANIFEST.md', u))) return u;
  }
  throw new Error('shared/data not found beside the repo');
}
