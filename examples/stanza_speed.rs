//! Time per stanza of the two reading steps every routed stanza takes: the
//! framer (`Framer::feed` + `next_event`, one stanza per read as on a
//! quiet connection) and the validator (`StanzaHead::parse`).
//!
//! `cargo run --release --example stanza_speed [COUNT] [BODY_BYTES]`

use std::time::Instant;
use xmppd::xml::{ns, Event, Framer, StanzaHead};

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let body: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    // What xmppd-load's chat sends (bench/README.md), `body` filler bytes.
    let stanza = format!(
        "<message to='u1234@localhost' type='chat' id='m56789'><body>#lt1733349000123456.56789# {}</body></message>",
        "x".repeat(body)
    );
    let mut framer = Framer::new(1 << 20, 64);
    framer.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>");
    assert!(matches!(framer.next_event(), Ok(Some(Event::StreamOpen(_)))));

    let mut framed = Vec::with_capacity(count.min(1 << 16));
    let t = Instant::now();
    for _ in 0..count {
        framer.feed(stanza.as_bytes());
        while let Some(ev) = framer.next_event().expect("well-formed") {
            if let Event::Stanza(s) = ev {
                if framed.len() < framed.capacity() {
                    framed.push(s);
                }
            }
        }
    }
    let frame_ns = t.elapsed().as_nanos() as f64 / count as f64;

    let t = Instant::now();
    let mut n = 0;
    while n < count {
        for s in &framed {
            std::hint::black_box(StanzaHead::parse(s, ns::CLIENT).expect("valid"));
            n += 1;
        }
    }
    let head_ns = t.elapsed().as_nanos() as f64 / n as f64;
    println!("stanza_bytes {}", stanza.len());
    println!("framer_ns_per_stanza {frame_ns:.0}");
    println!("head_parse_ns_per_stanza {head_ns:.0}");
}
