//! (tests) Image archives built here, read back.
