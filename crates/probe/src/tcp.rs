//! TCP checks: connect, and the negotiate services spoken over TCP.
//! Errors are the Down reason; the caller's timeout bounds every await.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::checks::Exchange;
use super::{excerpt, io_reason, Target};

type R<T = ()> = std::result::Result<T, String>;

/// Most a reply may grow to before we stop reading it.
const MAX_REPLY: usize = 64 * 1024;

pub async fn connect(target: &Target) -> R<TcpStream> {
    let addr = target.check_addr();
    let sock = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| io_reason("socket", &e))?;
    if let Some(src) = target.source {
        sock.bind(SocketAddr::new(src, 0)).map_err(|e| io_reason(&format!("bind {src}"), &e))?;
    }
    let stream = sock.connect(addr).await.map_err(|e| io_reason("connect", &e))?;
    // Small request/response exchanges: don't let Nagle hold them back.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

pub async fn negotiate(target: &Target, service: &Exchange) -> R {
    let mut conn = Conn { stream: connect(target).await?, buf: Vec::new() };
    match service {
        Exchange::SimpleTcp { request, receive } => {
            if !request.is_empty() {
                conn.write(request).await?;
            }
            // Like ldirectord: the request is complete, the reply may follow a half-close.
            let _ = conn.stream.shutdown().await;
            loop {
                if receive.is_match(&conn.buf) {
                    return Ok(());
                }
                if conn.buf.len() >= MAX_REPLY || !conn.fill().await? {
                    return Err(format!("reply does not match /{}/", receive.as_str()));
                }
            }
        }
        Exchange::Smtp { helo } => {
            let (code, line) = conn.code_reply().await?;
            if code != 220 {
                return Err(format!("smtp banner: {line}"));
            }
            conn.write(format!("EHLO {helo}\r\n").as_bytes()).await?;
            let (code, line) = conn.code_reply().await?;
            if code != 250 {
                return Err(format!("smtp EHLO answered: {line}"));
            }
            let _ = conn.write(b"QUIT\r\n").await;
            Ok(())
        }
        Exchange::Ftp => {
            let (code, line) = conn.code_reply().await?;
            if code != 220 {
                return Err(format!("ftp banner: {line}"));
            }
            let _ = conn.write(b"QUIT\r\n").await;
            Ok(())
        }
        Exchange::Pop => {
            let line = conn.line().await?;
            if !line.starts_with("+OK") {
                return Err(format!("pop greeting: {}", excerpt(line.as_bytes())));
            }
            let _ = conn.write(b"QUIT\r\n").await;
            Ok(())
        }
        Exchange::Imap => {
            let line = conn.line().await?;
            let up = line.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("* OK"))
                || line.get(..9).is_some_and(|s| s.eq_ignore_ascii_case("* PREAUTH"));
            if !up {
                return Err(format!("imap greeting: {}", excerpt(line.as_bytes())));
            }
            let _ = conn.write(b"a1 LOGOUT\r\n").await;
            Ok(())
        }
        Exchange::Mysql => mysql(&mut conn).await,
        Exchange::Pgsql => {
            // SSLRequest: length 8, code 80877103; any server answers one byte.
            conn.write(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await?;
            conn.need(1).await?;
            match conn.buf[0] {
                b'S' | b'N' => Ok(()),
                b'E' => Err("pgsql answered with an error".into()),
                b => Err(format!("pgsql answered 0x{b:02x}, not S or N")),
            }
        }
        Exchange::Ldap => ldap(&mut conn).await,
        // UDP services and http are dispatched elsewhere.
        Exchange::Dns { .. } | Exchange::Sip { .. } => Err("internal: not a tcp service".into()),
    }
}

/// The server greeting: a 4-byte header (length, sequence) and protocol
/// version 10, or an error packet (0xff, code, message) when the server
/// refuses us (too many connections, host blocked).
///
/// The check stops after the greeting, as the brief asks; MySQL counts such
/// connections against `max_connect_errors` for the checking host until a
/// complete login from it succeeds, so deployments raise that limit or use
/// an external check that logs in.
async fn mysql(conn: &mut Conn) -> R {
    conn.need(4).await?;
    let len = u32::from_le_bytes([conn.buf[0], conn.buf[1], conn.buf[2], 0]) as usize;
    if len == 0 {
        return Err("mysql greeting is empty".into());
    }
    conn.need(4 + len.min(512)).await?;
    let payload = &conn.buf[4..4 + len.min(512)];
    match payload[0] {
        10 => Ok(()),
        0xff if payload.len() >= 3 => {
            let code = u16::from_le_bytes([payload[1], payload[2]]);
            let msg = payload.get(3..).unwrap_or_default();
            // 4.1+ servers put '#' and a 5-byte SQLSTATE before the text.
            let msg = if msg.first() == Some(&b'#') { msg.get(6..).unwrap_or_default() } else { msg };
            Err(format!("mysql error {code}: {}", excerpt(msg)))
        }
        v => Err(format!("mysql protocol version {v}, not 10")),
    }
}

/// Anonymous simple bind (RFC 4511): BindRequest v3, empty name, empty
/// password; up when the BindResponse's resultCode is 0.
async fn ldap(conn: &mut Conn) -> R {
    const BIND: &[u8] = &[0x30, 0x0c, 0x02, 0x01, 0x01, 0x60, 0x07, 0x02, 0x01, 0x03, 0x04, 0x00, 0x80, 0x00];
    const UNBIND: &[u8] = &[0x30, 0x05, 0x02, 0x01, 0x02, 0x42, 0x00];
    conn.write(BIND).await?;
    conn.need(2).await?;
    let (len, hdr) = ber_len(&conn.buf[1..]).ok_or("ldap reply: bad length")?;
    if conn.buf[0] != 0x30 || len > MAX_REPLY {
        return Err("ldap reply is not an LDAPMessage".into());
    }
    conn.need(1 + hdr + len).await?;
    let code = bind_result(&conn.buf[1 + hdr..1 + hdr + len]).ok_or("ldap reply is not a BindResponse")?;
    let _ = conn.write(UNBIND).await;
    if code == 0 {
        Ok(())
    } else {
        Err(format!("ldap bind resultCode {code}"))
    }
}

/// A BER length: (value, bytes it took).
pub(super) fn ber_len(b: &[u8]) -> Option<(usize, usize)> {
    let first = *b.first()?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    if n == 0 || n > 4 {
        return None;
    }
    let mut v = 0usize;
    for i in 0..n {
        v = (v << 8) | *b.get(1 + i)? as usize;
    }
    Some((v, 1 + n))
}

/// resultCode of `messageID, [APPLICATION 1] { resultCode, ... }`.
pub(super) fn bind_result(msg: &[u8]) -> Option<u32> {
    // messageID INTEGER
    if *msg.first()? != 0x02 {
        return None;
    }
    let (idlen, h) = ber_len(&msg[1..])?;
    let rest = msg.get(1 + h + idlen..)?;
    if *rest.first()? != 0x61 {
        return None;
    }
    let (_, h) = ber_len(&rest[1..])?;
    let body = rest.get(1 + h..)?;
    if *body.first()? != 0x0a {
        return None;
    }
    let (clen, h) = ber_len(&body[1..])?;
    let bytes = body.get(1 + h..1 + h + clen)?;
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    Some(bytes.iter().fold(0u32, |v, &b| (v << 8) | b as u32))
}

/// A connection with what has been read from it and not yet consumed.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn write(&mut self, data: &[u8]) -> R {
        self.stream.write_all(data).await.map_err(|e| io_reason("write", &e))
    }

    /// Reads more; false at EOF.
    async fn fill(&mut self) -> R<bool> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await.map_err(|e| io_reason("read", &e))?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn need(&mut self, n: usize) -> R {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Err(if self.buf.is_empty() {
                    "connection closed without a reply".into()
                } else {
                    "reply cut short".into()
                });
            }
        }
        Ok(())
    }

    /// One line without its end of line, consumed.
    async fn line(&mut self) -> R<String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&line);
                return Ok(text.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() >= MAX_REPLY {
                return Err("reply line too long".into());
            }
            if !self.fill().await? {
                return Err(if self.buf.is_empty() {
                    "connection closed without a reply".into()
                } else {
                    format!("reply cut short: {}", excerpt(&self.buf))
                });
            }
        }
    }

    /// An SMTP/FTP reply, `NNN-...` continuation lines then `NNN ...`:
    /// its code and last line.
    async fn code_reply(&mut self) -> R<(u16, String)> {
        loop {
            let line = self.line().await?;
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                return Err(format!("not a reply: {}", excerpt(line.as_bytes())));
            };
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, excerpt(line.as_bytes())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ber() {
        assert_eq!(ber_len(&[0x05]), Some((5, 1)));
        assert_eq!(ber_len(&[0x81, 0x80]), Some((128, 2)));
        assert_eq!(ber_len(&[0x82, 0x01, 0x00]), Some((256, 3)));
        assert_eq!(ber_len(&[0x80]), None);
        assert_eq!(ber_len(&[0x85, 1, 2, 3, 4, 5]), None);
        assert_eq!(ber_len(&[0x82, 0x01]), None);
        // messageID 1, BindResponse { resultCode success, matchedDN "", diagnostic "" }
        let ok = [0x02, 0x01, 0x01, 0x61, 0x07, 0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(bind_result(&ok), Some(0));
        let mut refused = ok;
        refused[7] = 49; // invalidCredentials
        assert_eq!(bind_result(&refused), Some(49));
        // Long-form lengths are fine too.
        let long = [0x02, 0x01, 0x01, 0x61, 0x81, 0x07, 0x0a, 0x01, 0x35, 0x04, 0x00, 0x04, 0x00];
        assert_eq!(bind_result(&long), Some(53));
        for cut in 0..ok.len() - 4 {
            assert_eq!(bind_result(&ok[..cut]), None, "cut at {cut}");
        }
        assert_eq!(bind_result(&[0x02, 0x01, 0x01, 0x65, 0x00]), None, "a SearchResultDone is not a bind reply");
    }
}
