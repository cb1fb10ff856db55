/**
 * Names of every key and channel the state store uses, relative to the
 * configured prefix. One place, so docs/fleet.md and both stores agree.
 */
export const KEYS = {
  /** hash {side, epoch} */
  active: 'active',
  /** hash: the flip in progress or the last one (FlipRecord fields) */
  flip: 'flip',
  /** set of proxy ids ever registered and not yet pruned */
  proxies: 'proxies',
  /** string JSON ProxyRegistration, expires with the heartbeat ttl */
  proxy: (id: string) => `proxy:${id}`,
  /** string JSON HealthReport, expires */
  health: (id: string) => `health:${id}`,
  /** string: owning proxy id of a client-facing BackendKeyData (its cancelKeyId) */
  cancel: (keyId: string) => `cancel:${keyId}`,
  /** string "<token>|<holder>", expires with the lease */
  leader: 'leader',
  /** integer: last fencing token handed out */
  leaderToken: 'leader:token',
  /** hash {v: version, d: JSON} */
  kv: (key: string) => `kv:${key}`,
  /** list of JSON, newest first */
  list: (name: string) => `list:${name}`,
} as const;

export const CHANNELS = {
  /** controller → proxies: pause, switch, abort */
  flip: 'flip',
  /** proxies → controller: paused, switched, aborted */
  flipAcks: 'flip:acks',
  /** CancelRequests routed to the proxy owning the key */
  cancel: (proxyId: string) => `cancel:${proxyId}`,
} as const;

export const DEFAULT_PREFIX = 'pgflip:';
