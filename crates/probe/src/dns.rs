//! The few bytes of DNS a health check needs: one question out, the answer
//! section back (RFC 1035 §4), names possibly compressed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::{Error, Result};

/// The record types a dns check asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsType {
    A,
    Aaaa,
}

impl DnsType {
    pub fn code(self) -> u16 {
        match self {
            DnsType::A => 1,
            DnsType::Aaaa => 28,
        }
    }
}

pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| Error::invalid(format!("dns name '{name}': {why}"));
    let trimmed = name.strip_suffix('.').unwrap_or(name);
    if trimmed.is_empty() {
        return Err(bad("empty"));
    }
    if trimmed.len() > 253 {
        return Err(bad("longer than 253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        if label.len() > 63 {
            return Err(bad("label longer than 63 characters"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("only letters, digits, - and _ are allowed"));
        }
    }
    Ok(())
}

/// A standard query with recursion desired, for one name and type, class IN.
pub fn encode_query(id: u16, name: &str, qtype: DnsType) -> Result<Vec<u8>> {
    validate_name(name)?;
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // QD=1, AN=NS=AR=0
    for label in name.strip_suffix('.').unwrap_or(name).split('.') {
        // validate_name: labels of 1-63 bytes.
        q.push(u8::try_from(label.len()).map_err(|_| Error::invalid(format!("label {label} is too long")))?);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.code().to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    Ok(q)
}

/// What came back for our question, or why the reply is not an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// NOERROR; the addresses of the records of the asked type.
    Answer(Vec<IpAddr>),
    /// A reply with a non-zero RCODE (3 = NXDOMAIN, 2 = SERVFAIL, 5 = REFUSED ...).
    Rcode(u8),
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Skips a possibly compressed name; returns the offset after it.
fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    // A compression pointer ends the name in place, so at most 128 labels follow.
    for _ in 0..128 {
        let len = *msg.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => {
                msg.get(at + 1)?;
                return Some(at + 2);
            }
            l if l & 0xc0 == 0 => at += 1 + l as usize,
            _ => return None,
        }
    }
    None
}

/// Decodes a reply to the query `id`; None when it is not one (wrong id, not
/// a response, truncated or malformed) so the caller keeps waiting.
pub fn decode_reply(msg: &[u8], id: u16, qtype: DnsType) -> Option<Reply> {
    if be16(msg, 0)? != id {
        return None;
    }
    let flags = be16(msg, 2)?;
    if flags & 0x8000 == 0 {
        return None;
    }
    let rcode = (flags & 0x000f) as u8;
    if rcode != 0 {
        return Some(Reply::Rcode(rcode));
    }
    let qd = be16(msg, 4)?;
    let an = be16(msg, 6)?;
    let mut at = 12;
    for _ in 0..qd {
        at = skip_name(msg, at)? + 4;
    }
    let mut addrs = Vec::new();
    for _ in 0..an {
        at = skip_name(msg, at)?;
        let rtype = be16(msg, at)?;
        let rdlen = be16(msg, at + 8)? as usize;
        let data = msg.get(at + 10..at + 10 + rdlen)?;
        at += 10 + rdlen;
        match (rtype, qtype) {
            (1, DnsType::A) if rdlen == 4 => addrs.push(IpAddr::V4(Ipv4Addr::new(data[0], data[1], data[2], data[3]))),
            (28, DnsType::Aaaa) if rdlen == 16 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(data);
                addrs.push(IpAddr::V6(Ipv6Addr::from(o)));
            }
            _ => {} // CNAMEs and others on the way to the answer
        }
    }
    Some(Reply::Answer(addrs))
}

/// A short name for an RCODE, for the Down reason.
pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("rcode {n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = encode_query(0xbeef, "www.example.com", DnsType::A).unwrap();
        let want: &[u8] =
            b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x03com\x00\x00\x01\x00\x01";
        assert_eq!(q, want);
        let q = encode_query(1, "a.b.", DnsType::Aaaa).unwrap();
        assert_eq!(&q[12..], b"\x01a\x01b\x00\x00\x1c\x00\x01");
        for bad in ["", ".", "a..b", "a b", &"x".repeat(64), &["abc"; 70].join(".")] {
            assert!(matches!(encode_query(1, bad, DnsType::A), Err(Error::Invalid(_))), "{bad}");
        }
    }

    fn reply(id: u16, rcode: u8, answers: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = encode_query(id, "svc.test", DnsType::A).unwrap();
        m[2] = 0x81;
        m[3] = 0x80 | rcode;
        m[7] = u8::try_from(answers.len()).unwrap();
        for (t, data) in answers {
            m.extend_from_slice(&[0xc0, 12]); // pointer to the question name
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    #[test]
    fn decode_answers() {
        let m = reply(7, 0, &[(5, b"\x03www\x00"), (1, &[192, 0, 2, 1]), (1, &[192, 0, 2, 2])]);
        assert_eq!(
            decode_reply(&m, 7, DnsType::A),
            Some(Reply::Answer(vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()]))
        );
        assert_eq!(decode_reply(&m, 7, DnsType::Aaaa), Some(Reply::Answer(vec![])));
        let v6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let m6 = reply(9, 0, &[(28, &v6)]);
        assert_eq!(decode_reply(&m6, 9, DnsType::Aaaa), Some(Reply::Answer(vec!["2001:db8::1".parse().unwrap()])));
        assert_eq!(decode_reply(&reply(7, 3, &[]), 7, DnsType::A), Some(Reply::Rcode(3)));
        assert_eq!(rcode_name(3), "NXDOMAIN");
    }

    #[test]
    fn decode_rejects_junk() {
        let m = reply(7, 0, &[(1, &[192, 0, 2, 1])]);
        assert_eq!(decode_reply(&m, 8, DnsType::A), None, "other id");
        let q = encode_query(7, "svc.test", DnsType::A).unwrap();
        assert_eq!(decode_reply(&q, 7, DnsType::A), None, "a query is not a reply");
        for cut in 0..m.len() {
            assert_eq!(decode_reply(&m[..cut], 7, DnsType::A), None, "truncated at {cut}");
        }
        // A compression loop must end, not spin: decoded on a thread so that
        // a regression fails here instead of hanging the test run.
        let mut looped = reply(7, 0, &[(1, &[192, 0, 2, 1])]);
        looped[12] = 0xc0;
        looped[13] = 12;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(decode_reply(&looped, 7, DnsType::A)));
        assert!(rx.recv_timeout(std::time::Duration::from_secs(5)).is_ok(), "a compression loop hangs the decoder");
        // Label lengths with the reserved 0x40/0x80 bits.
        let mut odd = m.clone();
        odd[12] = 0x41;
        assert_eq!(decode_reply(&odd, 7, DnsType::A), None);
    }
}
