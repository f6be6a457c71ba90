/**
 * Hash routing: `#/runs`, `#/live?run=abc`, `#/compare?ids=a,b`. The hash keeps the place on
 * reload (serve mode) and leaves the token in the query string alone.
 */
export const VIEWS = [
  { id: 'system', label: 'System' },
  { id: 'datasets', label: 'Datasets' },
  { id: 'new', label: 'New experiment' },
  { id: 'live', label: 'Live run' },
  { id: 'runs', label: 'Runs' },
  { id: 'compare', label: 'Compare' },
  { id: 'eval', label: 'Evaluation' },
  { id: 'predict', label: 'Predict' },
] as const;

export type ViewId = (typeof VIEWS)[number]['id'];

export interface Route {
  view: ViewId;
  params: Record<string, string>;
}

function parse(hash: string): Route {
  const body = hash.replace(/^#\/?/, '');
  const [name, query = ''] = body.split('?');
  const known = VIEWS.some((v) => v.id === name);
  const params = Object.fromEntries(new URLSearchParams(query));
  return { view: known ? (name as ViewId) : 'system', params };
}

function format(route: Route): string {
  const q = new URLSearchParams(route.params).toString();
  return `#/${route.view}${q ? `?${q}` : ''}`;
}

/** The current screen and its parameters; `go` changes both (and the URL hash). */
export class Router {
  route = $state.raw<Route>(parse(typeof location === 'undefined' ? '' : location.hash));

  constructor() {
    window.addEventListener('hashchange', () => (this.route = parse(location.hash)));
  }

  go(view: ViewId, params: Record<string, string | undefined> = {}): void {
    const clean = Object.fromEntries(Object.entries(params).filter((e): e is [string, string] => e[1] != null && e[1] !== ''));
    const next = { view, params: clean };
    this.route = next;
    const h = format(next);
    if (location.hash !== h) history.pushState(null, '', h);
  }

  /** Remember the last run/dataset picked, so nav links land somewhere useful. */
  param(name: string): string | undefined {
    return this.route.params[name];
  }
}
