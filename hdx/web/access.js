// Who this page is and what it may do.
//
// - The join token: taken from the link (`?token=`, or `#token=` for windows this page opens)
//   into memory at once and removed from the address bar; it travels only as an
//   `Authorization: Bearer` header, never in a URL the page requests, and is never stored.
// - The role and input floor the server announces (`hello`, `floor`, `refused`), and the
//   header's badges and buttons for them. A `view` page never sends input or floor messages;
//   a `control` page sends input while it holds the floor or the floor is free (the server
//   gives a free floor to the first input), and not while someone else holds it.

/**
 * The link's token, removed from the address bar (other parameters stay).
 * @returns {string | null}
 */
export function takeToken() {
  const url = new URL(window.location.href);
  const hash = new URLSearchParams(url.hash.slice(1));
  const inQuery = url.searchParams.get('token');
  const inHash = hash.get('token');
  if (inQuery === null && inHash === null) return null;
  url.searchParams.delete('token');
  if (inHash !== null) {
    hash.delete('token');
    url.hash = hash.toString();
  }
  window.history.replaceState(window.history.state, '', url.pathname + url.search + url.hash);
  return inQuery || inHash || null;
}

/**
 * Request headers that carry `token` (none without one).
 * @param {string | null} token
 * @returns {Record<string, string>}
 */
export function bearer(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/**
 * @typedef {{session: string, user: string}} FloorRequest
 * @typedef {{holder: string | null, you: boolean, asked: boolean, requests: FloorRequest[]}} FloorState
 * @typedef {{role: HTMLElement, control: HTMLElement, note: HTMLElement,
 *            request: HTMLButtonElement, requests: HTMLElement, release: HTMLButtonElement}} AccessElements
 */

export class Access {
  /**
   * @param {AccessElements} elements the header's badges and buttons
   * @param {(msg: object) => void} send control-channel sender
   */
  constructor(elements, send) {
    this.el = elements;
    this.send = send;
    /** @type {'view' | 'control' | null} null until the server's hello */
    this.role = null;
    /** @type {string | null} */
    this.user = null;
    this.watermark = false;
    this.singleController = true;
    /** @type {FloorState | null} null until the server says who drives */
    this.floor = null;
    /** @type {{what: string, reason: string} | null} the server's last `refused` */
    this.lastRefused = null;
    /** Called when this page stops holding the floor (its held keys and buttons are gone). */
    this.onFloorLost = () => {};
    /** @type {(text: string) => void} shows a short notice in the status line */
    this.notify = () => {};
    elements.request.addEventListener('click', () => this.requestControl());
    elements.release.addEventListener('click', () => this.releaseControl());
    this.render();
  }

  /** A new session begins: nothing is known about its floor yet. */
  reset() {
    this.floor = null;
    this.render();
  }

  /** The server's `hello`. */
  hello(msg) {
    this.role = msg.role === 'view' ? 'view' : msg.role === 'control' ? 'control' : null;
    this.user = typeof msg.user === 'string' ? msg.user : null;
    this.watermark = msg.watermark === true;
    this.singleController = msg.single_controller !== false;
    this.floor = null;
    this.render();
  }

  /** The server's `floor`: who drives now. */
  setFloor(msg) {
    const had = this.floor !== null && this.floor.you;
    const requests = Array.isArray(msg.requests) ? msg.requests.filter((r) => r
      && typeof r.session === 'string' && typeof r.user === 'string') : [];
    this.floor = {
      holder: typeof msg.holder === 'string' ? msg.holder : null,
      you: msg.you === true,
      asked: msg.asked === true,
      requests: requests.map((r) => ({ session: r.session, user: r.user })),
    };
    if (had && !this.floor.you) this.onFloorLost();
    this.render();
  }

  /** The server's `refused`: something this page sent was dropped. */
  refused(msg) {
    this.lastRefused = { what: String(msg.what || ''), reason: String(msg.reason || 'refused') };
    this.notify(`${this.lastRefused.what || 'input'} refused: ${this.lastRefused.reason}`);
  }

  /** May this page send input now? (The gate in front of every pointer, wheel and key.) */
  mayDrive() {
    if (this.role !== 'control') return false;
    if (!this.singleController) return true;
    const floor = this.floor;
    return floor !== null && (floor.you || floor.holder === null);
  }

  /** Why input is not sent now, or null when it is. */
  whyNot() {
    if (this.mayDrive()) return null;
    if (this.role === 'view') return 'view only: input is not sent';
    if (this.floor && this.floor.holder) return `${this.floor.holder} is in control; request control to drive`;
    return 'not connected';
  }

  /** The user tried to drive while the page may not: say why. */
  blocked() {
    const why = this.whyNot();
    if (why) this.notify(why);
  }

  requestControl() {
    if (this.role === 'control') this.send({ t: 'floor', a: 'request' });
  }

  /** @param {string} sessionId the requesting session (16 hex digits) */
  grantControl(sessionId) {
    if (this.role === 'control') this.send({ t: 'floor', a: 'grant', to: String(sessionId) });
  }

  releaseControl() {
    if (this.role === 'control') this.send({ t: 'floor', a: 'release' });
  }

  /** What window.hdx.status() reports. */
  status() {
    const f = this.floor;
    return {
      role: this.role,
      user: this.user,
      watermark: this.watermark,
      floor: f && { holder: f.holder, you: f.you, asked: f.asked, requests: f.requests.map((r) => ({ ...r })) },
      refused: this.lastRefused && { ...this.lastRefused },
    };
  }

  render() {
    const { role, control, note, request, requests, release } = this.el;
    const floor = this.singleController ? this.floor : null;
    const controller = this.role === 'control';
    const mine = controller && floor !== null && floor.you;
    const other = floor !== null && !floor.you && floor.holder !== null;
    role.hidden = this.role !== 'view';
    control.hidden = !mine;
    note.hidden = !other;
    note.textContent = other ? `${floor.holder} is in control` : '';
    request.hidden = !(controller && other);
    request.disabled = !!(floor && floor.asked);
    request.textContent = floor && floor.asked ? 'Requested…' : 'Request control';
    release.hidden = !mine;
    this.renderRequests(requests, mine ? floor.requests : []);
  }

  /**
   * One "Hand control to USER" button per person asking (a person's windows ask together).
   * @param {HTMLElement} box
   * @param {FloorRequest[]} asking
   */
  renderRequests(box, asking) {
    const byUser = new Map();
    for (const r of asking) if (!byUser.has(r.user)) byUser.set(r.user, r.session);
    const want = [...byUser].map(([user, session]) => `${session}:${user}`).join(',');
    if (box.dataset.shown === want) return;
    box.dataset.shown = want;
    box.replaceChildren(...[...byUser].map(([user, session]) => {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'grant';
      button.dataset.session = session;
      button.textContent = `Hand control to ${user}`;
      button.addEventListener('click', () => this.grantControl(session));
      return button;
    }));
    box.hidden = byUser.size === 0;
  }
}
