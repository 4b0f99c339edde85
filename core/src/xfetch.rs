//! XFetch: probabilistic early recomputation (Vattani, Chierichetti, Lowenstein, "Optimal
//! Probabilistic Cache Stampede Prevention", VLDB 2015).
//!
//! A read at time `t` of an entry expiring at `expiry`, whose last load took `delta`, refreshes
//! early when `t - delta * beta * ln(u) >= expiry` for a fresh uniform `u` in (0, 1]. Since
//! `-ln(u)` is exponentially distributed with mean 1, the gap `expiry - t` at which a read
//! triggers is Exp(1/(delta*beta)): a hot key is refreshed about once, a few `delta`s before it
//! expires, and never misses at expiry; a key read once per TTL almost never triggers, because
//! its single read lands far from expiry relative to `delta`.

/// Whether a read at `now` of an entry expiring at `expiry`, loaded in `delta` ns, should refresh.
/// `u` is a uniform variate in (0, 1].
#[inline]
pub fn should_refresh(now: u64, expiry: u64, delta: u64, beta: f64, u: f64) -> bool {
    if delta == 0 || expiry == u64::MAX || now >= expiry {
        return false;
    }
    let gap = (expiry - now) as f64;
    // -ln(u) >= gap / (delta * beta)
    -u.ln() * delta as f64 * beta >= gap
}

/// SplitMix64: a tiny, seedable stream of random `u64`s from a counter, so cheap per-read draws
/// need no lock (an atomic counter feeds it).
#[inline]
pub(crate) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform variate in (0, 1] from 64 random bits.
#[inline]
pub(crate) fn unit(bits: u64) -> f64 {
    ((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_for_keys_without_history_or_expiry() {
        assert!(!should_refresh(0, 100, 0, 1.0, 1e-9));
        assert!(!should_refresh(0, u64::MAX, 10, 1.0, 1e-9));
        assert!(!should_refresh(200, 100, 10, 1.0, 1e-9), "already expired: a miss, not an early refresh");
    }

    /// The trigger probability of one read at gap g is exp(-g / (delta * beta)).
    #[test]
    fn probability_matches_theory() {
        let (delta, beta) = (1_000_000u64, 1.0);
        for gap_deltas in [0.5f64, 1.0, 2.0, 4.0] {
            let gap = (gap_deltas * delta as f64) as u64;
            let n = 200_000u64;
            let hits = (0..n).filter(|&i| should_refresh(0, gap, delta, beta, unit(splitmix64(i)))).count();
            let p = hits as f64 / n as f64;
            let expect = (-gap_deltas).exp();
            assert!((p - expect).abs() < 0.01, "gap {gap_deltas} deltas: p = {p}, theory {expect}");
        }
    }

    #[test]
    fn beta_moves_refreshes_earlier() {
        let n = 100_000u64;
        let count = |beta| (0..n).filter(|&i| should_refresh(0, 3_000, 1_000, beta, unit(splitmix64(i)))).count();
        assert!(count(3.0) > 2 * count(1.0));
    }

    #[test]
    fn unit_is_in_range() {
        assert!(unit(0) > 0.0);
        assert!(unit(u64::MAX) <= 1.0);
    }
}
