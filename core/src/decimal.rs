//! The text of an `f64` in error messages and Prometheus samples: exactly what `Display` writes
//! (the shortest digits that read back as the same number, never an exponent: `0.1`, `1`,
//! `1000000000000000000000`, `-0`, `NaN`, `inf`), from ryu's shortest digits. Rust's own float
//! formatting (Grisu with a Dragon4 fallback, and their tables) is about 20 KB of the WebAssembly
//! module, ryu's small-table build a tenth of that. Two differences are undone here: ryu writes
//! `1e21` and `1.0`, and where two shortest candidates are equally near it takes the even one,
//! `Display` the one further from zero.

use std::fmt;

/// An `f64` that displays as `f64`'s `Display` does (width and precision flags are ignored).
pub(crate) struct Decimal(pub f64);

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        if v.is_nan() {
            return f.write_str("NaN");
        }
        if v.is_sign_negative() {
            f.write_str("-")?;
        }
        if v.is_infinite() {
            return f.write_str("inf");
        }
        let mut buf = ryu::Buffer::new();
        let (mut digits, mut exp) = shortest(buf.format_finite(v.abs()).as_bytes());
        if digits == 0 {
            return f.write_str("0");
        }
        // a tie ryu broke to the even, lower candidate: `Display` takes the upper one
        if is_exactly(v.abs(), 10 * digits + 5, exp - 1) {
            digits += 1;
            while digits % 10 == 0 {
                digits /= 10;
                exp += 1;
            }
        }
        let mut text = [0u8; 20];
        let mut len = 0;
        let mut rest = digits;
        while rest > 0 {
            text[len] = b'0' + (rest % 10) as u8;
            rest /= 10;
            len += 1;
        }
        text[..len].reverse();
        // the decimal point falls after `point` digits (before the first one when <= 0)
        let point = len as i32 + exp;
        let digit = |f: &mut fmt::Formatter<'_>, b: u8| fmt::Write::write_char(f, char::from(b));
        if point <= 0 {
            f.write_str("0.")?;
            for _ in point..0 {
                f.write_str("0")?;
            }
            text[..len].iter().try_for_each(|&b| digit(f, b))
        } else {
            let point = point as usize;
            for (i, &b) in text[..len].iter().enumerate() {
                if i == point {
                    f.write_str(".")?;
                }
                digit(f, b)?;
            }
            (len..point).try_for_each(|_| f.write_str("0"))
        }
    }
}

/// An `f64` in an error message: as [`Decimal`] from 1e-6 up to 1e21 (where JavaScript writes
/// plain digits too), with an exponent beyond (`1e+300`, `1.5e-7`), so a huge value a user
/// gave reads as they would write it, not as 301 digits.
pub(crate) struct Short(pub f64);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.0.abs();
        if !a.is_finite() || a == 0.0 || (1e-6..1e21).contains(&a) {
            return Decimal(self.0).fmt(f);
        }
        // from the shortest digits `Decimal` uses (no `str` searching or integer formatting,
        // which would add kilobytes to the WebAssembly module)
        let mut buf = ryu::Buffer::new();
        let (digits, exp) = shortest(buf.format_finite(a).as_bytes());
        let mut text = [0u8; 20];
        let (mut len, mut rest) = (0, digits);
        while rest > 0 {
            text[len] = b'0' + (rest % 10) as u8;
            rest /= 10;
            len += 1;
        }
        text[..len].reverse();
        if self.0 < 0.0 {
            f.write_str("-")?;
        }
        for (i, &b) in text[..len].iter().enumerate() {
            if i == 1 {
                f.write_str(".")?;
            }
            fmt::Write::write_char(f, char::from(b))?;
        }
        let e = exp + len as i32 - 1;
        f.write_str(if e < 0 { "e" } else { "e+" })?;
        Decimal(f64::from(e)).fmt(f)
    }
}

/// ryu's text of a finite, non-negative number (`123.0`, `1.5e-7`, `1e21`) as digits `d` and an
/// exponent `q` (the number is `d * 10^q`), `d` without trailing zeros (0 for zero).
fn shortest(text: &[u8]) -> (u64, i32) {
    let (mut digits, mut exp) = (0u64, 0i32);
    let (mut fraction, mut after_e, mut exp_sign, mut e) = (false, false, 1, 0i32);
    for &b in text {
        match b {
            b'.' => fraction = true,
            b'e' => after_e = true,
            b'-' => exp_sign = -1,
            d if after_e => e = e * 10 + i32::from(d - b'0'),
            d => {
                digits = digits * 10 + u64::from(d - b'0');
                if fraction {
                    exp -= 1;
                }
            }
        }
    }
    exp += exp_sign * e;
    while digits != 0 && digits % 10 == 0 {
        digits /= 10;
        exp += 1;
    }
    (digits, exp)
}

/// Whether `v` (finite, non-negative) is exactly `t * 10^p`, for an odd `t` below 10^19: with
/// `v = m * 2^e` and `m` odd, both sides' powers of two must match (`e == p`), and what is left
/// (`m` against `t * 5^p`) fits in u128 wherever a double can match at all.
fn is_exactly(v: f64, t: u64, p: i32) -> bool {
    let bits = v.to_bits();
    let (frac, biased) = (bits & ((1 << 52) - 1), (bits >> 52) as i32);
    let (mut m, mut e) = if biased == 0 { (frac, -1074) } else { (frac | 1 << 52, biased - 1075) };
    if m == 0 {
        return false;
    }
    let tz = m.trailing_zeros();
    m >>= tz;
    e += tz as i32;
    // m < 2^53 and t < 2^64: 5^p beyond 5^22 (p >= 0) or 5^-p beyond 5^28 (p < 0) cannot match
    e == p
        && match p {
            0..=22 => u128::from(m) == u128::from(t) * 5u128.pow(p as u32),
            -28..=-1 => u128::from(m) * 5u128.pow(-p as u32) == u128::from(t),
            _ => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn same(v: f64) {
        assert_eq!(Decimal(v).to_string(), v.to_string(), "bits {:#x}", v.to_bits());
    }

    #[test]
    // the ties below are exact values, written in full on purpose
    #[allow(clippy::excessive_precision)]
    fn special_and_edge_values_display_as_f64_does() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.1,
            0.5,
            1.5,
            10.0,
            100.0,
            123.456,
            1e-7,
            1.5e-7,
            1e15,
            1e16,
            1e21,
            1e22,
            1e100,
            1e300,
            -1e300,
            1e-300,
            5e-324,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            31_536_000_000.0,
            0.0001,
            0.000_25,
            2.5,
            9_007_199_254_740_993.0,
            1.0 / 3.0,
            // ties between two shortest candidates, where ryu and `Display` once differed
            998_505_798_477_991.25,
            199_693_879_638_657.625,
            1_771_388_708_518_181.25,
            -1_704_007_611_719_213.25,
        ] {
            same(v);
        }
    }

    #[test]
    fn short_writes_an_exponent_only_beyond_plain_digits() {
        for (v, want) in [
            (1e300, "1e+300"),
            (-1e300, "-1e+300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (1e20, "100000000000000000000"),
            (123.25, "123.25"),
            (0.000001, "0.000001"),
            (0.0, "0"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(Short(v).to_string(), want);
        }
    }

    #[test]
    fn random_values_display_as_f64_does() {
        let mut rng = crate::SeededRng::seed_from_u64(7);
        for _ in 0..300_000 {
            // any bit pattern (every exponent), and values of the sizes settings take
            same(f64::from_bits(rng.random()));
            let x: f64 = rng.random::<f64>() * 10f64.powi(rng.random_range(-12..22));
            same(x);
            same((x * 1000.0).round() / 1000.0);
            // few fraction bits at magnitudes where ties happen
            same((rng.random_range(1u64 << 40..1 << 60) as f64) / f64::from(1 << rng.random_range(0..8)));
        }
    }
}
