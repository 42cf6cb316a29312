/** `certkeeper/testing`: tools for testing code built on certkeeper and for testing storage adapters. */
export { FakeClock } from './fake-clock.js';
export { runStorageConformance, type StorageConformanceOptions } from './conformance.js';
