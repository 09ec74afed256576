//! Wire format of the admin socket: one request, one response, then the
//! connection closes.
//!
//! Request: a kind byte (`C` a command line, `B` a `register_bulk` batch),
//! the payload length (u32, big endian), then the payload: fields, each a
//! u32 length and UTF-8 bytes. A command's fields are its name and
//! arguments. Payloads are capped: [`MAX_COMMAND`], [`MAX_BULK`].
//!
//! Response: the exit code (i32), then stdout and stderr, each a u32 length
//! and UTF-8 bytes.

use super::Outcome;
use std::io::{self, Read, Write};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Request kind: a command line.
pub const KIND_COMMAND: u8 = b'C';
/// Request kind: a batch of accounts with derived credentials.
pub const KIND_BULK: u8 = b'B';
/// Largest command payload.
pub const MAX_COMMAND: usize = 64 * 1024;
/// Largest bulk batch payload.
pub const MAX_BULK: usize = 16 * 1024 * 1024;
/// Largest response the client accepts.
pub const MAX_RESPONSE: usize = 256 * 1024 * 1024;

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Encode fields as (u32 length, bytes) pairs.
pub fn encode_fields<S: AsRef<str>>(fields: &[S]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fields.iter().map(|f| f.as_ref().len() + 4).sum());
    for f in fields {
        let f = f.as_ref().as_bytes();
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// Decode what [`encode_fields`] produced.
pub fn decode_fields(mut payload: &[u8]) -> io::Result<Vec<String>> {
    let mut fields = Vec::new();
    while !payload.is_empty() {
        if payload.len() < 4 {
            return Err(invalid("truncated field length"));
        }
        let n = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) as usize;
        payload = &payload[4..];
        if payload.len() < n {
            return Err(invalid("truncated field"));
        }
        let s = std::str::from_utf8(&payload[..n]).map_err(|_| invalid("field is not UTF-8"))?;
        fields.push(s.to_string());
        payload = &payload[n..];
    }
    Ok(fields)
}

/// The cap for a request kind, or `None` for an unknown kind.
pub fn max_payload(kind: u8) -> Option<usize> {
    match kind {
        KIND_COMMAND => Some(MAX_COMMAND),
        KIND_BULK => Some(MAX_BULK),
        _ => None,
    }
}

/// Encode a whole request.
pub fn encode_request<S: AsRef<str>>(kind: u8, fields: &[S]) -> io::Result<Vec<u8>> {
    let payload = encode_fields(fields);
    let max = max_payload(kind).ok_or_else(|| invalid("unknown request kind"))?;
    if payload.len() > max {
        return Err(invalid(format!("request too large ({} bytes, at most {max})", payload.len())));
    }
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(kind);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Read a request (daemon side). `Ok(None)` when the peer closed before
/// sending anything (a liveness probe).
pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<Option<(u8, Vec<String>)>> {
    let mut kind = [0u8; 1];
    if r.read(&mut kind).await? == 0 {
        return Ok(None);
    }
    let max = max_payload(kind[0]).ok_or_else(|| invalid(format!("unknown request kind {:#04x}", kind[0])))?;
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(invalid(format!("request too large ({len} bytes, at most {max})")));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((kind[0], decode_fields(&payload)?)))
}

/// Encode a response.
pub fn encode_response(o: &Outcome) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + o.stdout.len() + o.stderr.len());
    out.extend_from_slice(&o.code.to_be_bytes());
    for s in [&o.stdout, &o.stderr] {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    out
}

fn read_string<R: Read>(r: &mut R, budget: &mut usize) -> io::Result<String> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > *budget {
        return Err(invalid("response too large"));
    }
    *budget -= len;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    String::from_utf8(buf).map_err(|_| invalid("response is not UTF-8"))
}

/// Read a response (client side).
pub fn read_response<R: Read>(r: &mut R) -> io::Result<Outcome> {
    let mut code = [0u8; 4];
    r.read_exact(&mut code)?;
    let mut budget = MAX_RESPONSE;
    let stdout = read_string(r, &mut budget)?;
    let stderr = read_string(r, &mut budget)?;
    Ok(Outcome { code: i32::from_be_bytes(code), stdout, stderr })
}

/// Send a request and read the response over a connected stream.
pub fn exchange<S: Read + Write>(stream: &mut S, kind: u8, fields: &[String]) -> io::Result<Outcome> {
    let req = encode_request(kind, fields)?;
    stream.write_all(&req)?;
    stream.flush()?;
    read_response(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip() {
        let f = vec!["register".to_string(), "".into(), "pässwörd with spaces\0and nul".into()];
        assert_eq!(decode_fields(&encode_fields(&f)).unwrap(), f);
        assert!(decode_fields(&[0, 0, 0, 5, b'a']).is_err());
        assert!(decode_fields(&[0, 0]).is_err());
        assert!(decode_fields(&[0, 0, 0, 1, 0xff]).is_err());
    }

    #[test]
    fn response_round_trip() {
        let o = Outcome { code: 3, stdout: "a\nb\n".into(), stderr: "é".into() };
        assert_eq!(read_response(&mut &encode_response(&o)[..]).unwrap(), o);
        assert!(read_response(&mut &encode_response(&o)[..7]).is_err());
    }

    #[tokio::test]
    async fn request_round_trip_and_caps() {
        let f = vec!["status".to_string()];
        let req = encode_request(KIND_COMMAND, &f).unwrap();
        assert_eq!(read_request(&mut &req[..]).await.unwrap(), Some((KIND_COMMAND, f)));
        assert_eq!(read_request(&mut &b""[..]).await.unwrap(), None);
        // Too large for a command, fine for a batch.
        let big = vec!["x".repeat(MAX_COMMAND)];
        assert!(encode_request(KIND_COMMAND, &big).is_err());
        let req = encode_request(KIND_BULK, &big).unwrap();
        assert!(read_request(&mut &req[..]).await.unwrap().is_some());
        let mut forged = req.clone();
        forged[0] = KIND_COMMAND;
        assert!(read_request(&mut &forged[..]).await.is_err());
        forged[0] = b'?';
        assert!(read_request(&mut &forged[..]).await.is_err());
    }
}
