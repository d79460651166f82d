//! End-to-end tests of sluice against the local stack; see tests/tests/.
