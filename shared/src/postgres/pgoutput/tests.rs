//! Tests of decoding pgoutput messages and LSNs.

use super::encode::Msg;
use super::*;

#[test]
fn lsn_prints_and_parses_like_postgres() {
    let l: Lsn = "16/B374D848".parse().unwrap();
    assert_eq!(l.0, 0x16_B374_D848);
    assert_eq!(l.to_string(), "16/B374D848");
    assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn(0));
    assert!("16B374D848".parse::<Lsn>().is_err());
    assert!("1/FFFFFFFFF".parse::<Lsn>().is_err());
}

#[test]
fn begin_and_commit() {
    let b = Msg::new(b'B').i64(0x1000).i64(777).i32(42).0;
    assert_eq!(
        decode(&b).unwrap(),
        Message::Begin {
            final_lsn: Lsn(0x1000),
            commit_time: 777,
            xid: 42
        }
    );
    let c = Msg::new(b'C').u8(0).i64(0x1000).i64(0x1030).i64(777).0;
    assert_eq!(
        decode(&c).unwrap(),
        Message::Commit {
            commit_lsn: Lsn(0x1000),
            end_lsn: Lsn(0x1030),
            commit_time: 777
        }
    );
}

#[test]
fn relation_type_and_origin() {
    let r = Msg::new(b'R')
        .i32(16384)
        .s("public")
        .s("orders")
        .u8(b'd')
        .i16(2)
        .u8(1)
        .s("id")
        .i32(20)
        .i32(-1)
        .u8(0)
        .s("total")
        .i32(1700)
        .i32((12 << 16 | 2) + 4)
        .0;
    let Message::Relation(rel) = decode(&r).unwrap() else {
        panic!("a relation")
    };
    assert_eq!(
        (rel.schema.as_str(), rel.name.as_str()),
        ("public", "orders")
    );
    assert_eq!(rel.replica_identity, b'd');
    assert!(rel.columns[0].key && !rel.columns[1].key);
    assert_eq!(rel.columns[1].type_oid, 1700);
    let y = Msg::new(b'Y').i32(99999).s("public").s("mood").0;
    assert_eq!(
        decode(&y).unwrap(),
        Message::Type {
            oid: 99999,
            schema: "public".into(),
            name: "mood".into()
        }
    );
    let o = Msg::new(b'O').i64(5).s("upstream").0;
    assert_eq!(
        decode(&o).unwrap(),
        Message::Origin {
            lsn: Lsn(5),
            name: "upstream".into()
        }
    );
}

#[test]
fn insert_update_delete_with_every_value_kind() {
    let i = Msg::new(b'I')
        .i32(7)
        .u8(b'N')
        .tuple(&[(b'b', &[0, 0, 0, 1]), (b'n', b""), (b't', b"hi")])
        .0;
    assert_eq!(
        decode(&i).unwrap(),
        Message::Insert {
            relation: 7,
            new: vec![
                Value::Binary(&[0, 0, 0, 1]),
                Value::Null,
                Value::Text(b"hi")
            ]
        }
    );
    // Without an old tuple, with the old key, with the full old row.
    let u = Msg::new(b'U')
        .i32(7)
        .u8(b'N')
        .tuple(&[(b't', b"1"), (b'u', b"")])
        .0;
    assert_eq!(
        decode(&u).unwrap(),
        Message::Update {
            relation: 7,
            old: None,
            new: vec![Value::Text(b"1"), Value::UnchangedToast]
        }
    );
    for (marker, kind) in [(b'K', OldKind::Key), (b'O', OldKind::Full)] {
        let u = Msg::new(b'U')
            .i32(7)
            .u8(marker)
            .tuple(&[(b't', b"1"), (b'n', b"")])
            .u8(b'N')
            .tuple(&[(b't', b"2"), (b't', b"x")])
            .0;
        assert_eq!(
            decode(&u).unwrap(),
            Message::Update {
                relation: 7,
                old: Some((kind, vec![Value::Text(b"1"), Value::Null])),
                new: vec![Value::Text(b"2"), Value::Text(b"x")]
            }
        );
    }
    let d = Msg::new(b'D').i32(7).u8(b'K').tuple(&[(b't', b"1")]).0;
    assert_eq!(
        decode(&d).unwrap(),
        Message::Delete {
            relation: 7,
            old: (OldKind::Key, vec![Value::Text(b"1")])
        }
    );
}

#[test]
fn truncate_and_logical_message() {
    let t = Msg::new(b'T').i32(2).u8(3).i32(7).i32(8).0;
    assert_eq!(
        decode(&t).unwrap(),
        Message::Truncate {
            relations: vec![7, 8],
            cascade: true,
            restart_identity: true
        }
    );
    let m = Msg::new(b'M').u8(1).i64(9).s("app").i32(3).0;
    let mut m = m;
    m.extend_from_slice(b"abc");
    assert_eq!(
        decode(&m).unwrap(),
        Message::Message {
            transactional: true,
            lsn: Lsn(9),
            prefix: "app".into(),
            content: b"abc"
        }
    );
}

#[test]
fn malformed_messages_say_what_is_wrong() {
    let cut = Msg::new(b'B').i64(1).0;
    assert!(decode(&cut).unwrap_err().0.contains("commit time"));
    assert!(decode(b"Z").unwrap_err().0.contains("unknown message type"));
    assert!(decode(b"").unwrap_err().0.contains("message type"));
    let bad_kind = Msg::new(b'I').i32(1).u8(b'N').i16(1).u8(b'x').0;
    assert!(decode(&bad_kind)
        .unwrap_err()
        .0
        .contains("unknown value kind"));
    let long = Msg::new(b'I').i32(1).u8(b'N').tuple(&[(b't', b"abc")]).0;
    let cut = &long[..long.len() - 1];
    assert!(decode(cut).unwrap_err().0.contains("a value"));
    let mut extra = Msg::new(b'O').i64(5).s("x").0;
    extra.push(0);
    assert!(decode(&extra).unwrap_err().0.contains("after its end"));
    let no_nul = Msg::new(b'Y')
        .i32(1)
        .0
        .into_iter()
        .chain(*b"pub")
        .collect::<Vec<_>>();
    assert!(decode(&no_nul).unwrap_err().0.contains("NUL"));
}

#[test]
fn every_prefix_of_a_message_is_an_error_not_a_panic() {
    let u = Msg::new(b'U')
        .i32(7)
        .u8(b'O')
        .tuple(&[(b't', b"1"), (b'n', b""), (b'b', b"\x00\x01")])
        .u8(b'N')
        .tuple(&[(b't', b"2"), (b'u', b""), (b'b', b"\x00\x02")])
        .0;
    for n in 0..u.len() {
        assert!(decode(&u[..n]).is_err(), "prefix of {n} bytes");
    }
    assert!(decode(&u).is_ok());
}
