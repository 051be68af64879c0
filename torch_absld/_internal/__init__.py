"""Private helpers (checks, collectives, compilation, module modes): no public API, may change in any release."""
