// The page's entry module. It starts a visit's API requests at once, while
// the rest of the modules load, then starts the page (app.js).

import { paths, prefetch } from './api.js';

const m = /^\/encounters\/([^/]+)$/.exec(location.pathname);
if (m) {
  const id = decodeURIComponent(m[1]);
  for (const p of [paths.encounter(id), paths.transcript(id), paths.note(id)]) prefetch(p);
}
import('./app.js');
