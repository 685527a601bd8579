//! Locking a std mutex that a panic may have poisoned.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking its guard even when a thread panicked while holding it.
///
/// The crate's std mutexes guard bookkeeping only (tracked containers and
/// processes, pending rollbacks, a stdin slot, the in-memory double's world):
/// no engine callback runs and no await happens under them, so a critical
/// section cut short by a panic leaves data that is still consistent.
/// Tolerating the poison keeps one panic from turning every later call of
/// the client into a panic too. Keep new critical sections that way.
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_is_still_locked() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _guard = m2.lock();
            panic!("poisons the mutex");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
