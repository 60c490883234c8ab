// When to rotate: kubelet's rule.
import type { Random } from '../base/time.js';

/**
 * kubelet's deadline (client-go certificate_manager.go nextRotationDeadline): NotBefore plus a
 * uniform 70-90 % of the lifetime, so nodes that got certs together do not rotate together.
 * `fraction` pins the point instead (a config override), still measured from NotBefore.
 */
export function rotationDeadline(notBefore: Date, notAfter: Date, rand: Random = Math.random, fraction?: number): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const f = fraction ?? 0.7 + 0.2 * rand();
  return new Date(notBefore.getTime() + f * lifetime);
}

/** The span in which rotationDeadline falls, for reports that do not know the random draw. */
export function rotationWindow(notBefore: Date, notAfter: Date): { from: Date; to: Date } {
  return { from: rotationDeadline(notBefore, notAfter, () => 0), to: rotationDeadline(notBefore, notAfter, () => 1) };
}
