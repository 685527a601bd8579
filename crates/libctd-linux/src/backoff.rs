//! The pause between two attempts of something that keeps failing.

use std::time::Duration;

/// Delays that double from a first one up to a cap: `first`, `2 * first`,
/// `4 * first`, .., `cap`, `cap`, ..; [`reset`](Self::reset) starts over.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `first` up to `cap`.
    pub(crate) fn new(first: Duration, cap: Duration) -> Self {
        Self {
            first,
            cap,
            next: first.min(cap),
        }
    }

    /// The delay to wait now; the one after is twice as long, at most `cap`.
    pub(crate) fn next(&mut self) -> Duration {
        let delay = self.next;
        self.next = delay.saturating_mul(2).min(self.cap);
        delay
    }

    /// The next delay is `first` again (the thing worked).
    pub(crate) fn reset(&mut self) {
        self.next = self.first.min(self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn doubles_up_to_the_cap() {
        let mut b = Backoff::new(ms(100), Duration::from_secs(5));
        let delays: Vec<_> = (0..9).map(|_| b.next()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000].map(ms)
        );
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(ms(200), Duration::from_secs(1));
        assert_eq!(
            [b.next(), b.next(), b.next(), b.next()],
            [200, 400, 800, 1000].map(ms)
        );
        b.reset();
        assert_eq!(b.next(), ms(200));
        assert_eq!(b.next(), ms(400));
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(Duration::MAX / 2 + ms(1), Duration::MAX);
        assert_eq!(b.next(), Duration::MAX / 2 + ms(1));
        assert_eq!(b.next(), Duration::MAX);
        assert_eq!(b.next(), Duration::MAX);
        let mut small_cap = Backoff::new(ms(100), ms(50));
        assert_eq!(small_cap.next(), ms(50));
    }
}
