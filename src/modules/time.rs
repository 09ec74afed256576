//! XEP-0202 Entity Time: the server tells its UTC time.
//!
//! The server always answers in UTC with a zero offset: `<tzo>+00:00</tzo>`
//! is a valid XEP-0082 TZD and reveals nothing about where the host runs
//! (XEP-0202 §8 notes the offset may leak location).

use super::{to_server, Ctx, IqAnswer, IqRequest, Module};
use crate::stanza::StanzaError;
use crate::xml::Element;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `urn:xmpp:time` namespace (XEP-0202 §10.1).
pub const NS: &str = "urn:xmpp:time";

/// urn:xmpp:time.
pub struct Time;

impl Module for Time {
    fn namespaces(&self) -> &'static [&'static str] {
        &[NS]
    }

    fn handle(&self, req: &IqRequest<'_>, _ctx: &Ctx<'_>) -> IqAnswer {
        // XEP-0202 §3: a request is an iq get with an empty <time/>.
        if req.set || req.payload.name != "time" {
            return Err(StanzaError::BadRequest);
        }
        // Only the server's own time: an iq to an account's bare JID is not
        // something the server answers for the user (XEP-0202 §4: the
        // standard XEP-0086 service-unavailable applies).
        if !to_server(req) {
            return Err(StanzaError::ServiceUnavailable);
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        Ok(Some(time_element(now)))
    }
}

/// `<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>…</utc></time>` for
/// `unix_secs` (XEP-0202 §3: both children REQUIRED).
pub fn time_element(unix_secs: i64) -> Element {
    Element::new("time", NS)
        .with_child(Element::new("tzo", NS).with_text("+00:00"))
        .with_child(Element::new("utc", NS).with_text(format_utc(unix_secs)))
}

/// XEP-0082 §3.2 DateTime profile in UTC, without fractions:
/// `CCYY-MM-DDThh:mm:ssZ`.
pub fn format_utc(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day)
/// (H. Hinnant's `civil_from_days`, eras of 400 years).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        // Values checked with `date -u -d @SECS`.
        for (t, s) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_166_551_115, "2006-12-19T17:58:35Z"), // XEP-0202 §4's example
            (1_709_251_199, "2024-02-29T23:59:59Z"),
            (4_102_444_799, "2099-12-31T23:59:59Z"),
            (68_256_000_000, "4132-12-12T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ] {
            assert_eq!(format_utc(t), s, "{t}");
        }
    }

    #[test]
    fn element_shape() {
        assert_eq!(
            time_element(1_166_551_115).to_client_string(),
            "<time xmlns='urn:xmpp:time'><tzo>+00:00</tzo><utc>2006-12-19T17:58:35Z</utc></time>"
        );
    }
}
