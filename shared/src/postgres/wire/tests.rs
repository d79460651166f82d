//! Tests of decoding Postgres binary values.

use super::*;

/// Builds the binary form of a numeric from its base-10000 digits.
fn numeric(neg: bool, weight: i16, dscale: u16, digits: &[u16]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend((digits.len() as i16).to_be_bytes());
    b.extend(weight.to_be_bytes());
    b.extend((if neg { NUMERIC_NEG } else { 0u16 }).to_be_bytes());
    b.extend(dscale.to_be_bytes());
    for d in digits {
        b.extend(d.to_be_bytes());
    }
    b
}

#[test]
fn numeric_text_is_exact() {
    // 1234.5678
    let b = numeric(false, 0, 4, &[1234, 5678]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "1234.5678");
    // -0.0012 (dscale 4)
    let b = numeric(true, -1, 4, &[12]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "-0.0012");
    // 100000000 = [1, 0000, 0000] with trailing zero groups stripped
    let b = numeric(false, 2, 0, &[1]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "100000000");
    // 12.50 keeps its display scale
    let b = numeric(false, 0, 2, &[12, 5000]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "12.50");
    // zero
    let b = numeric(false, 0, 0, &[]);
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "0");
}

#[test]
fn numeric_to_decimal128_at_scale_9() {
    let b = numeric(false, 0, 2, &[12, 5000]);
    assert_eq!(
        Numeric::parse(&b).unwrap().to_numeric().unwrap(),
        12_500_000_000
    );
    let b = numeric(true, -1, 4, &[12]);
    assert_eq!(
        Numeric::parse(&b).unwrap().to_numeric().unwrap(),
        -1_200_000
    );
    let b = numeric(false, 2, 0, &[1]);
    assert_eq!(
        Numeric::parse(&b).unwrap().to_numeric().unwrap(),
        100_000_000_000_000_000
    );
    // 10 fractional digits do not fit scale 9.
    let b = numeric(false, -1, 10, &[1, 0, 1]);
    assert!(Numeric::parse(&b).unwrap().to_numeric().is_err());
    // 1e28 has 29 integer digits and fits NUMERIC; 1e29 has 30 and does not.
    let b = numeric(false, 7, 0, &[1]);
    assert!(Numeric::parse(&b).unwrap().to_numeric().is_ok());
    let b = numeric(false, 7, 0, &[10]);
    assert!(Numeric::parse(&b).unwrap().to_numeric().is_err());
}

#[test]
fn numeric_limits() {
    // 99999999999999999999999999999.999999999 is NUMERIC's maximum.
    let max = "99999999999999999999999999999.999999999";
    let b = numeric(
        false,
        7,
        9,
        &[
            9, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9999, 9000,
        ],
    );
    let n = Numeric::parse(&b).unwrap();
    assert_eq!(n.to_text(), max);
    assert_eq!(n.to_numeric().unwrap(), 10i128.pow(38) - 1);
    // One more integer digit goes beyond NUMERIC but fits BIGNUMERIC.
    let b = numeric(false, 7, 0, &[99, 9999, 9999, 9999, 9999, 9999, 9999, 9999]);
    let n = Numeric::parse(&b).unwrap();
    assert!(n.to_numeric().is_err());
    let big = n.to_bignumeric().unwrap();
    assert_eq!(
        big.to_string(),
        format!("{}{}", n.to_text(), "0".repeat(38))
    );
}

#[test]
fn numeric_specials() {
    let mut b = numeric(false, 0, 0, &[]);
    b[4..6].copy_from_slice(&NUMERIC_NAN.to_be_bytes());
    let n = Numeric::parse(&b).unwrap();
    assert_eq!(n.to_text(), "NaN");
    assert!(n.to_numeric().is_err());
    b[4..6].copy_from_slice(&NUMERIC_NINF.to_be_bytes());
    assert_eq!(Numeric::parse(&b).unwrap().to_text(), "-Infinity");
}

#[test]
fn intervals_print_as_iso_8601() {
    assert_eq!(interval_iso(0, 0, 0), "PT0S");
    assert_eq!(
        interval_iso(4 * 3_600_000_000 + 5 * 60_000_000 + 6_500_000, 3, 14),
        "P1Y2M3DT4H5M6.5S"
    );
    assert_eq!(interval_iso(-(90 * 60_000_000), 0, 0), "PT-1H-30M");
    assert_eq!(interval_iso(0, -1, -1), "P-1M-1D");
    assert_eq!(interval_iso(1, 0, 0), "PT0.000001S");
}

#[test]
fn infinities_clamp_and_counted() {
    assert_eq!(
        date(&i32::MAX.to_be_bytes()).unwrap(),
        Fit::Clamped(BQ_MAX_DAYS)
    );
    assert_eq!(
        date(&i32::MIN.to_be_bytes()).unwrap(),
        Fit::Clamped(BQ_MIN_DAYS)
    );
    assert_eq!(
        date(&0i32.to_be_bytes()).unwrap(),
        Fit::Exact(PG_EPOCH_OFFSET_DAYS)
    );
    assert!(date(&(-2_000_000i32).to_be_bytes()).is_err());
    assert_eq!(
        timestamp(&i64::MAX.to_be_bytes()).unwrap(),
        Fit::Clamped(BQ_MAX_MICROS)
    );
    assert_eq!(
        timestamp(&0i64.to_be_bytes()).unwrap(),
        Fit::Exact(PG_EPOCH_OFFSET_MICROS)
    );
    assert_eq!(
        time(&86_400_000_000i64.to_be_bytes()).unwrap(),
        Fit::Clamped(BQ_MAX_TIME_MICROS)
    );
}

#[test]
fn uuid_inet_float() {
    let u: Vec<u8> = (0u8..16).collect();
    assert_eq!(uuid(&u).unwrap(), "00010203-0405-0607-0809-0a0b0c0d0e0f");
    assert_eq!(inet(&[2, 32, 0, 4, 10, 0, 0, 1]).unwrap(), "10.0.0.1");
    assert_eq!(inet(&[2, 8, 1, 4, 10, 0, 0, 0]).unwrap(), "10.0.0.0/8");
    let mut v6 = vec![3, 64, 0, 16];
    v6.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(inet(&v6).unwrap(), "2001:db8::1/64");
    // As Postgres prints them: IPv4-compatible and IPv4-mapped dotted, `::1` and `::102`
    // (a zero word before the last) not.
    let v6 = |last: [u8; 6]| {
        let mut b = vec![3, 128, 0, 16];
        b.extend([0u8; 10]);
        b.extend(last);
        inet(&b).unwrap()
    };
    assert_eq!(v6([0, 0, 1, 2, 3, 4]), "::1.2.3.4");
    assert_eq!(v6([0xff, 0xff, 1, 2, 3, 4]), "::ffff:1.2.3.4");
    assert_eq!(v6([0, 0, 0, 0, 0, 1]), "::1");
    assert_eq!(v6([0, 0, 0, 0, 1, 2]), "::102");
    assert_eq!(float(&0.1f32.to_be_bytes()).unwrap(), 0.1);
    assert!(float(&f32::NAN.to_be_bytes()).unwrap().is_nan());
    assert_eq!(
        float(&f64::NEG_INFINITY.to_be_bytes()).unwrap(),
        f64::NEG_INFINITY
    );
    assert_eq!(jsonb(b"\x01{\"a\":1}").unwrap(), "{\"a\":1}");
    assert!(jsonb(b"\x02{}").is_err());
}
