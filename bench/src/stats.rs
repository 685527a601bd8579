//! Statistics of samples: order statistics and a trend.

use serde_json::{Value, json};

/// Order statistics of a sample, in the sample's unit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Dist {
    /// How many finite samples there were.
    pub(crate) n: usize,
    /// The smallest.
    pub(crate) min: f64,
    /// The median (nearest rank).
    pub(crate) p50: f64,
    /// The 90th percentile (nearest rank).
    pub(crate) p90: f64,
    /// The 99th percentile (nearest rank).
    pub(crate) p99: f64,
    /// The largest.
    pub(crate) max: f64,
    /// The arithmetic mean.
    pub(crate) mean: f64,
}

impl Dist {
    /// The statistics of `samples`, ignoring those that are not finite.
    pub(crate) fn of(samples: &[f64]) -> Self {
        let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return Self::default();
        }
        s.sort_by(f64::total_cmp);
        // Nearest rank.
        let rank = |q: f64| {
            let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
            s[i - 1]
        };
        Self {
            n: s.len(),
            min: s[0],
            p50: rank(0.5),
            p90: rank(0.9),
            p99: rank(0.99),
            max: s[s.len() - 1],
            mean: s.iter().sum::<f64>() / s.len() as f64,
        }
    }

    /// The statistics and the samples they were taken of, for the results file.
    pub(crate) fn json(&self, samples: &[f64]) -> Value {
        json!({
            "n": self.n, "min": self.min, "p50": self.p50, "p90": self.p90,
            "p99": self.p99, "max": self.max, "mean": self.mean, "samples": samples,
        })
    }
}

/// Least-squares slope of `y` over `x` (per unit of `x`).
pub(crate) fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), (x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    if den == 0.0 { 0.0 } else { num / den }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Dist::of(&v);
        assert_eq!(
            (d.min, d.p50, d.p90, d.p99, d.max),
            (1.0, 50.0, 90.0, 99.0, 100.0)
        );
        assert_eq!(Dist::of(&[]).n, 0);
        assert_eq!(Dist::of(&[3.0]).p99, 3.0);
    }

    #[test]
    fn least_squares_slope() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), 2.0);
        assert_eq!(slope(&[(1.0, 1.0)]), 0.0);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), 0.0);
    }
}
