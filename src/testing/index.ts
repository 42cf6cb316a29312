/** `certkeeper/testing`: tools for testing code built on certkeeper (fake clock, a test CA in front of Pebble) and for testing storage adapters. */
export { FakeClock } from './fake-clock.js';
export { runStorageConformance, type StorageConformanceOptions } from './conformance.js';
export { startTestCa } from './test-ca/test-ca.js';
export type {
  RenewalWindow,
  TestCa,
  TestCaCertificate,
  TestCaEndpoint,
  TestCaFault,
  TestCaOptions,
  TestCaPebble,
  TestCaProfile,
} from './test-ca/types.js';
