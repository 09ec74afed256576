//! Smoke test of `examples/floor.rs` (bench/README.md, "Microbenchmarks"):
//! both halves in this process, plain and TLS, tiny numbers, no timing
//! assertions; every frame sent must arrive.

#[allow(dead_code)]
#[path = "../examples/floor.rs"]
mod floor;

use tokio::net::TcpListener;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_and_handshakes() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.der").display().to_string();
    for tls in [None, Some(cert.as_str())] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(floor::relay_serve(listener, tls.map(floor::acceptor)));
        let run = floor::relay_load(&addr, 10, 200.0, 1.0, None, tls).await;
        println!("{}", run.line);
        assert!(run.sent >= 150, "{}", run.line);
        assert_eq!(run.delivered, run.sent, "{}", run.line);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(floor::tls_serve(listener, floor::acceptor(&cert)));
    let line = floor::tls_load(&addr, &cert, 20, 4, None).await;
    assert!(line.starts_with("handshakes 20 of 20 per_s "), "{line}");
}
