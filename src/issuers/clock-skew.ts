/** notBefore is set this far in the past, so a client whose clock lags a little still accepts a fresh certificate. */
export const CLOCK_SKEW_BACKDATE_MS = 60_000;
