//! Decoding single values of PostgreSQL's binary wire format (as in `COPY … (FORMAT binary)`
//! and pgoutput's binary tuples) into the representations BigQuery loads.

use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr};

use arrow::datatypes::i256;

/// A value or message that does not have the shape its type's binary format gives it: what
/// was expected, and where. Callers add the table and column (`Error::Decode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Microseconds between 1970-01-01 and Postgres's epoch 2000-01-01.
pub const PG_EPOCH_OFFSET_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
pub const PG_EPOCH_OFFSET_DAYS: i32 = 10_957;
/// BigQuery's smallest and largest TIMESTAMP/DATETIME, in microseconds since the Unix epoch.
pub const BQ_MIN_MICROS: i64 = -62_135_596_800_000_000;
pub const BQ_MAX_MICROS: i64 = 253_402_300_799_999_999;
/// BigQuery's smallest and largest DATE, in days since the Unix epoch.
pub const BQ_MIN_DAYS: i32 = -719_162;
pub const BQ_MAX_DAYS: i32 = 2_932_896;
/// The largest TIME BigQuery holds (Postgres allows 24:00:00).
pub const BQ_MAX_TIME_MICROS: i64 = 86_399_999_999;

/// A value that fit only after clamping (±infinity, 24:00:00), so callers can count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit<T> {
    Exact(T),
    Clamped(T),
}

impl<T> Fit<T> {
    pub fn value(self) -> T {
        match self {
            Fit::Exact(v) | Fit::Clamped(v) => v,
        }
    }
}

pub fn read_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}
pub fn read_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
pub fn read_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn expect_len(b: &[u8], n: usize, what: &str) -> Result<(), DecodeError> {
    if b.len() == n {
        Ok(())
    } else {
        Err(DecodeError(format!(
            "{what}: expected {n} bytes, got {}",
            b.len()
        )))
    }
}

pub fn int(b: &[u8]) -> Result<i64, DecodeError> {
    match b.len() {
        2 => Ok(read_i16(b) as i64),
        4 => Ok(read_i32(b) as i64),
        8 => Ok(read_i64(b)),
        n => Err(DecodeError(format!("integer: unexpected length {n}"))),
    }
}

/// `oid` is unsigned 32-bit.
pub fn oid(b: &[u8]) -> Result<i64, DecodeError> {
    expect_len(b, 4, "oid")?;
    Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64)
}

/// float8 as is; float4 through its shortest decimal form, so `0.1::real` arrives as 0.1
/// (what psql shows) rather than 0.10000000149011612.
pub fn float(b: &[u8]) -> Result<f64, DecodeError> {
    match b.len() {
        4 => {
            let f = f32::from_be_bytes([b[0], b[1], b[2], b[3]]);
            if f.is_finite() {
                Ok(f.to_string().parse::<f64>().unwrap_or(f as f64))
            } else {
                Ok(f as f64)
            }
        }
        8 => Ok(f64::from_be_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ])),
        n => Err(DecodeError(format!("float: unexpected length {n}"))),
    }
}

pub fn boolean(b: &[u8]) -> Result<bool, DecodeError> {
    expect_len(b, 1, "bool")?;
    Ok(b[0] != 0)
}

/// Days since the Unix epoch; ±infinity clamp to BigQuery's range, other out-of-range dates fail.
pub fn date(b: &[u8]) -> Result<Fit<i32>, DecodeError> {
    expect_len(b, 4, "date")?;
    let d = read_i32(b);
    match d {
        i32::MAX => Ok(Fit::Clamped(BQ_MAX_DAYS)),
        i32::MIN => Ok(Fit::Clamped(BQ_MIN_DAYS)),
        d => {
            let unix = d as i64 + PG_EPOCH_OFFSET_DAYS as i64;
            if unix < BQ_MIN_DAYS as i64 || unix > BQ_MAX_DAYS as i64 {
                Err(DecodeError(format!(
                    "date {} days from 2000-01-01 is outside BigQuery's DATE range (0001-01-01 to 9999-12-31)",
                    d
                )))
            } else {
                Ok(Fit::Exact(unix as i32))
            }
        }
    }
}

/// Microseconds since the Unix epoch for timestamp and timestamptz (both count from 2000-01-01 UTC).
pub fn timestamp(b: &[u8]) -> Result<Fit<i64>, DecodeError> {
    expect_len(b, 8, "timestamp")?;
    match read_i64(b) {
        i64::MAX => Ok(Fit::Clamped(BQ_MAX_MICROS)),
        i64::MIN => Ok(Fit::Clamped(BQ_MIN_MICROS)),
        t => {
            let unix = t.checked_add(PG_EPOCH_OFFSET_MICROS);
            match unix {
                Some(u) if (BQ_MIN_MICROS..=BQ_MAX_MICROS).contains(&u) => Ok(Fit::Exact(u)),
                _ => Err(DecodeError(format!(
                    "timestamp {t} µs from 2000-01-01 is outside BigQuery's range (years 1 to 9999)"
                ))),
            }
        }
    }
}

/// Microseconds since midnight; 24:00:00 becomes 23:59:59.999999.
pub fn time(b: &[u8]) -> Result<Fit<i64>, DecodeError> {
    expect_len(b, 8, "time")?;
    let t = read_i64(b);
    if t > BQ_MAX_TIME_MICROS {
        Ok(Fit::Clamped(BQ_MAX_TIME_MICROS))
    } else {
        Ok(Fit::Exact(t))
    }
}

/// ISO 8601 duration, as Postgres prints it with `intervalstyle = iso_8601`.
pub fn interval(b: &[u8]) -> Result<String, DecodeError> {
    expect_len(b, 16, "interval")?;
    Ok(interval_iso(
        read_i64(&b[0..8]),
        read_i32(&b[8..12]),
        read_i32(&b[12..16]),
    ))
}

pub fn interval_iso(micros: i64, days: i32, months: i32) -> String {
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        let _ = write!(s, "{years}Y");
    }
    if months != 0 {
        let _ = write!(s, "{months}M");
    }
    if days != 0 {
        let _ = write!(s, "{days}D");
    }
    if micros != 0 {
        s.push('T');
        let neg = micros < 0;
        let abs = micros.unsigned_abs();
        let hours = abs / 3_600_000_000;
        let minutes = abs / 60_000_000 % 60;
        let secs = abs / 1_000_000 % 60;
        let frac = abs % 1_000_000;
        let sign = if neg { "-" } else { "" };
        if hours != 0 {
            let _ = write!(s, "{sign}{hours}H");
        }
        if minutes != 0 {
            let _ = write!(s, "{sign}{minutes}M");
        }
        if secs != 0 || frac != 0 {
            let _ = write!(s, "{sign}{secs}");
            if frac != 0 {
                let f = format!("{frac:06}");
                let _ = write!(s, ".{}", f.trim_end_matches('0'));
            }
            s.push('S');
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    s
}

pub fn uuid(b: &[u8]) -> Result<String, DecodeError> {
    expect_len(b, 16, "uuid")?;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        let _ = write!(s, "{byte:02x}");
    }
    Ok(s)
}

/// inet/cidr in Postgres's text form: `10.0.0.1`, `10.0.0.0/8`, `::1/128` for cidr.
pub fn inet(b: &[u8]) -> Result<String, DecodeError> {
    if b.len() < 4 {
        return Err(DecodeError("inet: too short".into()));
    }
    let (family, bits, is_cidr, n) = (b[0], b[1], b[2] != 0, b[3] as usize);
    let addr = &b[4..];
    if addr.len() != n {
        return Err(DecodeError(format!(
            "inet: address length {} != {n}",
            addr.len()
        )));
    }
    let (text, max_bits) = match (family, n) {
        (2, 4) => (
            Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
            32,
        ),
        (3, 16) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(addr);
            // Postgres writes an IPv4-compatible address (96 zero bits, then a word that is
            // not zero) with its IPv4 part dotted, as it does IPv4-mapped ones; Rust only the
            // mapped ones.
            let text = if a[..12].iter().all(|&x| x == 0) && (a[12], a[13]) != (0, 0) {
                format!("::{}", Ipv4Addr::new(a[12], a[13], a[14], a[15]))
            } else {
                Ipv6Addr::from(a).to_string()
            };
            (text, 128)
        }
        _ => {
            return Err(DecodeError(format!(
                "inet: unknown family {family} with {n} bytes"
            )))
        }
    };
    if is_cidr || bits != max_bits {
        Ok(format!("{text}/{bits}"))
    } else {
        Ok(text)
    }
}

pub fn jsonb(b: &[u8]) -> Result<&str, DecodeError> {
    text(jsonb_bytes(b)?)
}

/// The JSON text of a binary jsonb (version 1), not yet checked to be UTF-8.
pub fn jsonb_bytes(b: &[u8]) -> Result<&[u8], DecodeError> {
    match b.split_first() {
        Some((1, rest)) => Ok(rest),
        Some((v, _)) => Err(DecodeError(format!("jsonb: unknown version {v}"))),
        None => Err(DecodeError("jsonb: empty".into())),
    }
}

pub fn text(b: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(b).map_err(|e| DecodeError(format!("text is not UTF-8: {e}")))
}

/// A decoded `numeric`: sign, base-10000 digits, weight of the first digit, display scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numeric<'a> {
    pub special: Option<&'static str>,
    pub negative: bool,
    pub weight: i16,
    pub dscale: u16,
    digits: &'a [u8],
}

const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

impl<'a> Numeric<'a> {
    pub fn parse(b: &'a [u8]) -> Result<Self, DecodeError> {
        if b.len() < 8 {
            return Err(DecodeError("numeric: too short".into()));
        }
        let ndigits = read_i16(&b[0..2]);
        let weight = read_i16(&b[2..4]);
        let sign = u16::from_be_bytes([b[4], b[5]]);
        let dscale = u16::from_be_bytes([b[6], b[7]]);
        let digits = &b[8..];
        if ndigits < 0 || digits.len() != ndigits as usize * 2 {
            return Err(DecodeError(format!(
                "numeric: {ndigits} digits but {} bytes",
                digits.len()
            )));
        }
        let special = match sign {
            NUMERIC_NAN => Some("NaN"),
            NUMERIC_PINF => Some("Infinity"),
            NUMERIC_NINF => Some("-Infinity"),
            0 | NUMERIC_NEG => None,
            s => return Err(DecodeError(format!("numeric: bad sign {s:#x}"))),
        };
        Ok(Numeric {
            special,
            negative: sign == NUMERIC_NEG,
            weight,
            dscale,
            digits,
        })
    }

    fn digit(&self, i: usize) -> u16 {
        u16::from_be_bytes([self.digits[2 * i], self.digits[2 * i + 1]])
    }

    fn ndigits(&self) -> usize {
        self.digits.len() / 2
    }

    /// The exact text Postgres prints.
    pub fn to_text(&self) -> String {
        if let Some(s) = self.special {
            return s.to_string();
        }
        let mut s = String::new();
        if self.negative {
            s.push('-');
        }
        let n = self.ndigits() as i32;
        let w = self.weight as i32;
        if w < 0 {
            s.push('0');
        } else {
            for i in 0..=w {
                let d = if i < n { self.digit(i as usize) } else { 0 };
                if i == 0 {
                    let _ = write!(s, "{d}");
                } else {
                    let _ = write!(s, "{d:04}");
                }
            }
        }
        if self.dscale > 0 {
            s.push('.');
            let mut frac = String::new();
            let mut i = w + 1;
            while (frac.len() as u16) < self.dscale {
                let d = if i >= 0 && i < n {
                    self.digit(i as usize)
                } else {
                    0
                };
                let _ = write!(frac, "{d:04}");
                i += 1;
            }
            frac.truncate(self.dscale as usize);
            s.push_str(&frac);
        }
        s
    }

    /// The value × 10^scale as an integer, when that is exact and below 10^precision.
    fn unscaled<T: Decimal>(&self, scale: i32, precision: u32) -> Result<T, DecodeError> {
        if let Some(s) = self.special {
            return Err(DecodeError(format!("{s} has no BigQuery numeric form")));
        }
        let too_big = || {
            DecodeError(format!(
                "{} does not fit {precision} digits with scale {scale}",
                self.to_text()
            ))
        };
        let too_fine = || {
            DecodeError(format!(
                "{} has more than {scale} digits after the point",
                self.to_text()
            ))
        };
        // Horner over base-10000 groups, aligned so the result is value × 10^scale and never
        // holds more digits than that: groups at or above the scale's last digit are taken
        // whole, a group straddling it is divided down (exactly), any below must be zero.
        let mut acc = T::zero();
        let mut last_units: Option<i32> = None; // decimal exponent of acc's units, once aligned
        let mut aligned = false;
        for i in 0..self.ndigits() {
            let d = self.digit(i) as i64;
            let e = 4 * (self.weight as i32 - i as i32) + scale; // exponent of d's units, in scale units
            if aligned || e < -3 {
                if d != 0 {
                    return Err(too_fine());
                }
                continue;
            }
            if e >= 0 {
                acc = acc
                    .checked_mul(T::from_i64(10_000))
                    .and_then(|a| a.checked_add(T::from_i64(d)))
                    .ok_or_else(too_big)?;
                last_units = Some(e);
            } else {
                let r = (-e) as u32;
                let div = 10i64.pow(r);
                if d % div != 0 {
                    return Err(too_fine());
                }
                acc = acc
                    .checked_mul(T::from_i64(10i64.pow(4 - r)))
                    .and_then(|a| a.checked_add(T::from_i64(d / div)))
                    .ok_or_else(too_big)?;
                aligned = true;
                last_units = Some(0);
            }
        }
        if let Some(units) = last_units {
            if units > 0 {
                acc = acc
                    .checked_mul(T::pow10(units as u32).ok_or_else(too_big)?)
                    .ok_or_else(too_big)?;
            }
        }
        let limit = T::pow10(precision).ok_or_else(too_big)?;
        if acc >= limit {
            return Err(too_big());
        }
        Ok(if self.negative { acc.neg() } else { acc })
    }

    /// For a NUMERIC column: Decimal128 at scale 9.
    pub fn to_numeric(&self) -> Result<i128, DecodeError> {
        self.to_decimal128(38, 9)
    }

    /// Decimal128(precision, scale), for NUMERIC and for BIGNUMERIC of declared precision ≤ 38.
    pub fn to_decimal128(&self, precision: u8, scale: i8) -> Result<i128, DecodeError> {
        self.unscaled::<i128>(scale as i32, precision as u32)
    }

    /// Decimal256(76, 38), for BIGNUMERIC of unconstrained or wide `numeric`.
    pub fn to_bignumeric(&self) -> Result<i256, DecodeError> {
        self.unscaled::<i256>(38, 76)
    }
}

/// The integer arithmetic `unscaled` needs, for i128 and i256.
trait Decimal: Copy + PartialOrd + PartialEq {
    fn zero() -> Self;
    fn from_i64(v: i64) -> Self;
    fn checked_mul(self, o: Self) -> Option<Self>;
    fn checked_add(self, o: Self) -> Option<Self>;
    fn neg(self) -> Self;
    fn pow10(e: u32) -> Option<Self> {
        let mut v = Self::from_i64(1);
        for _ in 0..e {
            v = v.checked_mul(Self::from_i64(10))?;
        }
        Some(v)
    }
}

impl Decimal for i128 {
    fn zero() -> Self {
        0
    }
    fn from_i64(v: i64) -> Self {
        v as i128
    }
    fn checked_mul(self, o: Self) -> Option<Self> {
        i128::checked_mul(self, o)
    }
    fn checked_add(self, o: Self) -> Option<Self> {
        i128::checked_add(self, o)
    }
    fn neg(self) -> Self {
        -self
    }
}

impl Decimal for i256 {
    fn zero() -> Self {
        i256::ZERO
    }
    fn from_i64(v: i64) -> Self {
        i256::from_i128(v as i128)
    }
    fn checked_mul(self, o: Self) -> Option<Self> {
        i256::checked_mul(self, o)
    }
    fn checked_add(self, o: Self) -> Option<Self> {
        i256::checked_add(self, o)
    }
    fn neg(self) -> Self {
        i256::wrapping_neg(self)
    }
}

#[cfg(test)]
mod tests;
