//! `hspq serve`'s logins, seen from outside: an unknown user gets the same SCRAM exchange as
//! the real one, an address that keeps failing waits longer for each attempt, and every login
//! and refusal is a line on stderr that names the address and user, never the password.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::serve::{Server, PASSWORD};
use common::{ingest_lake, sim, MSSP_KEY};

/// One backend message: its type byte and body.
fn message(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).unwrap();
    let length = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0; length - 4];
    stream.read_exact(&mut body).unwrap();
    (head[0], body)
}

/// The server's first SCRAM message to `user` (its nonce, salt and iterations), after the
/// startup and the client's first message, as libpq sends them.
fn server_first(port: u16, user: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut startup = Vec::new();
    startup.extend(196_608u32.to_be_bytes());
    for field in ["user", user, "database", "hspq"] {
        startup.extend(field.as_bytes());
        startup.push(0);
    }
    startup.push(0);
    let mut packet = ((startup.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(startup);
    stream.write_all(&packet).unwrap();
    let (kind, body) = message(&mut stream);
    assert_eq!(kind, b'R', "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..4], &10u32.to_be_bytes(), "not SASL");
    let client_first = b"n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
    let mut sasl = b"SCRAM-SHA-256\0".to_vec();
    sasl.extend((client_first.len() as u32).to_be_bytes());
    sasl.extend(client_first);
    let mut packet = vec![b'p'];
    packet.extend(((sasl.len() + 4) as u32).to_be_bytes());
    packet.extend(sasl);
    stream.write_all(&packet).unwrap();
    let (kind, body) = message(&mut stream);
    assert_eq!(kind, b'R', "{user}: {}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..4], &11u32.to_be_bytes(), "not SASLContinue");
    String::from_utf8(body[4..].to_vec()).unwrap()
}

/// The `s=` and `i=` of a server-first message (the nonce differs every time).
fn salt_and_iterations(first: &str) -> String {
    first
        .split(',')
        .filter(|f| f.starts_with("s=") || f.starts_with("i="))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_looks_like_a_wrong_password_and_failing_addresses_are_slowed() {
    let sim = sim(|c| c.companies = 5).await;
    let lake = tempfile::tempdir().unwrap();
    ingest_lake(&sim, lake.path(), &[MSSP_KEY]).await;
    let server = Server::start_with(lake.path(), &["--max-connections".as_ref(), "2".as_ref()]);
    // The same exchange whoever asks: a salt that does not change between attempts for the
    // real user or an unknown one, and the same iterations.
    let real = salt_and_iterations(&server_first(server.port, "hspq"));
    let unknown = salt_and_iterations(&server_first(server.port, "mallory"));
    assert_eq!(
        real,
        salt_and_iterations(&server_first(server.port, "hspq"))
    );
    assert_eq!(
        unknown,
        salt_and_iterations(&server_first(server.port, "mallory"))
    );
    assert_ne!(real, unknown);
    assert!(
        real.contains("i=4096") && unknown.contains("i=4096"),
        "{real} {unknown}"
    );
    // And the same refusal.
    let wrong = |user: &str, password: &str| {
        let conninfo = format!(
            "host=127.0.0.1 port={} user={user} dbname=hspq",
            server.port
        );
        let started = Instant::now();
        let out = server.psql_over(&conninfo, password, "select 1");
        assert!(!out.status.success());
        (
            String::from_utf8_lossy(&out.stderr).into_owned(),
            started.elapsed(),
        )
    };
    let (for_unknown, _) = wrong("mallory", PASSWORD);
    let (for_real, _) = wrong("hspq", "not-the-password");
    assert_eq!(
        for_unknown.replace("mallory", "USER"),
        for_real.replace("hspq", "USER")
    );
    assert!(
        for_real.contains("password authentication failed"),
        "{for_real}"
    );
    // Two failures so far; three more are free, the sixth waits a second, the seventh two.
    for _ in 0..3 {
        wrong("hspq", "not-the-password");
    }
    let (_, sixth) = wrong("hspq", "not-the-password");
    assert!(sixth >= Duration::from_secs(1), "{sixth:?}");
    let (_, seventh) = wrong("hspq", "not-the-password");
    assert!(seventh >= Duration::from_secs(2), "{seventh:?}");
    // The right password still gets in (after its wait).
    assert_eq!(server.psql("select 42"), "42\n");
    // Connections that never log in take no client's place (a psql gets in past 7 of them,
    // beyond --max-connections 2; 8 may log in at once from one address) and are closed
    // after 15 s.
    let silent: Vec<TcpStream> = (0..7)
        .map(|_| TcpStream::connect(("127.0.0.1", server.port)).unwrap())
        .collect();
    let out = server.psql_over(
        &format!("host=127.0.0.1 port={} user=hspq dbname=hspq", server.port),
        PASSWORD,
        "select 43",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut first = &silent[0];
    first
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let started = Instant::now();
    assert_eq!(first.read(&mut [0u8; 16]).unwrap(), 0, "not closed");
    assert!(started.elapsed() < Duration::from_secs(30));
    let printed = server.stop();
    assert!(!printed.contains(PASSWORD) && !printed.contains("not-the-password"));
    let refused = printed
        .lines()
        .filter(|l| l.contains("login refused: 127.0.0.1:"))
        .count();
    assert_eq!(refused, 7, "{printed}");
    assert!(
        printed.contains("user \"mallory\": unknown user"),
        "{printed}"
    );
    assert!(
        printed.contains("user \"hspq\": wrong password"),
        "{printed}"
    );
    assert!(printed.contains("its attempt waits 3 s"), "{printed}");
    assert!(printed.contains("no login within 15 s"), "{printed}");
    assert!(
        printed
            .lines()
            .any(|l| l.contains("login: 127.0.0.1:") && l.contains("user \"hspq\"")),
        "{printed}"
    );
}
