/**
 * The keeper's outgoing notices: the expiry watch (`cert_expiring`, one timer
 * re-planned whenever a served certificate changes) and, when `notify` is
 * configured, the webhook/exec notifier subscribed to the keeper's events.
 */
import type { ResolvedConfig } from '../config/index.js';
import type { TypedEmitter } from '../events.js';
import { ExpiryWatch, type ExpiringSource, type ExpiryWatchOptions } from '../notify/expiry-watch.js';
import { Notifier } from '../notify/notifier.js';
import { DEFAULT_NOTIFY_EXPIRING_RATIO } from '../notify/options.js';
import type { Storage } from '../storage/types.js';

export function watchExpiry(
  config: ResolvedConfig,
  events: TypedEmitter,
  list: ExpiryWatchOptions['list'],
  one: (name: string) => ExpiringSource | undefined,
): ExpiryWatch {
  const watch = new ExpiryWatch({
    clock: config.clock,
    ratio: config.notify ? config.notify.expiringRatio : DEFAULT_NOTIFY_EXPIRING_RATIO,
    list,
    emit: (event) => events.emit('cert_expiring', event),
  });
  // A served certificate changed: the watch notes that one (O(1)) and re-plans its one timer if it crosses sooner.
  for (const event of ['cert_obtained', 'cert_loaded'] as const) {
    events.on(event, ({ names }) => {
      const cert = names[0] !== undefined ? one(names[0]) : undefined;
      if (cert) watch.note(cert);
    });
  }
  return watch;
}

export function createNotifier(config: ResolvedConfig, events: TypedEmitter, storage: Storage): Notifier | undefined {
  if (!config.notify) return undefined;
  return new Notifier({
    config: config.notify,
    on: (event, listener) => events.on(event, listener),
    emit: (failure) => events.emit('notification_failed', failure),
    storage,
    clock: config.clock,
    logger: config.logger.child({ component: 'notify' }),
  });
}
