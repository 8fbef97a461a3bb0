// Replaced by the full-batch optimizer tests.
