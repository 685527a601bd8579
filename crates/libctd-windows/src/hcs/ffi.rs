//! computecore.dll binding (in progress).
