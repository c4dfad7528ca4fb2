//! The relay against hostile clients (issue 12): 2,000 idle connections under a 1,024-descriptor
//! limit, slowloris headers and bodies, 800 unsigned 1 MiB bodies (peak RSS bounded), and SIGTERM
//! while a client holds a half-sent request. Every hostile connection comes from its own loopback
//! address block (127.0.N.M), so the per-peer cap applies to it and not to the signed webhooks
//! sent from 127.0.0.1.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

use super::*;

/// The relay's defaults (docs/relay.md), which the assertions below are written against.
const MAX_CONNECTIONS: usize = 512;
const MAX_PER_PEER: usize = 64;
/// Peak resident memory the relay may reach under the unsigned-body flood (docs/relay.md).
const RSS_BOUND_MIB: u64 = 96;

fn args<const N: usize>(list: [&str; N]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A TCP connection to `to` from the loopback address `from` (all of 127/8 is this host).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from.into(), 0))?;
    match tokio::time::timeout(Duration::from_secs(5), socket.connect(to)).await {
        Ok(connected) => connected,
        Err(_) => Err(io::ErrorKind::TimedOut.into()),
    }
}

/// Reads until the relay closes the connection (EOF or reset) and returns what it sent; `None`
/// if the connection is still open after `bound` (a generous upper bound, not a pacing sleep).
async fn read_until_closed(stream: &mut TcpStream, bound: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()
    .map(|()| seen)
}

/// Whether the relay has closed `stream` (checked without blocking).
fn is_closed(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match stream.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != io::ErrorKind::WouldBlock,
    }
}

/// A real failed-gate body with its own task id.
fn event(task: &str) -> Vec<u8> {
    String::from_utf8(payload_bytes("webhook-gate-failed.compact.body"))
        .unwrap()
        .replace(REAL_TASK, task)
        .into_bytes()
}

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the relay's /proc/PID/fd")
        .count()
}

/// A `Vm…:  N kB` line of /proc/PID/status, in KiB.
fn vm_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Sends `count` signed events concurrently from 127.0.0.1 and returns their statuses.
async fn send_signed(url: &str, tag: &str, count: usize) -> Vec<Result<u16, String>> {
    let c = client();
    let mut set = JoinSet::new();
    for i in 0..count {
        let (c, url) = (c.clone(), url.to_string());
        let body = event(&format!("{tag}{i:04}"));
        set.spawn(async move {
            send(&c, &url, &body, Some(&sign(&body)), JSON_UTF8)
                .await
                .map(|(status, _)| status)
                .map_err(|e| e.to_string())
        });
    }
    set.join_all().await
}

/// Waits until `#alerts` holds a post for each of `keys` and returns how many posts it holds.
async fn delivered(mm: &Mattermost, tag: &str, count: usize) {
    let expected: HashSet<String> = (0..count).map(|i| format!("task:{tag}{i:04}")).collect();
    let posts = eventually(
        "the signed events in #alerts",
        Duration::from_secs(60),
        async || {
            let keys: Vec<String> = posts_in(mm, "alerts")
                .iter()
                .filter_map(|p| p.props["cityd_relay_key"].as_str().map(String::from))
                .filter(|k| expected.contains(k))
                .collect();
            (keys.len() >= count).then_some(keys)
        },
    )
    .await;
    let unique: HashSet<_> = posts.iter().collect();
    assert_eq!(
        (posts.len(), unique.len()),
        (count, count),
        "each event posted once"
    );
}

/// Defect 1: before the fix, 1,100 idle connections under the default 1,024-descriptor limit
/// blocked every webhook. Now the relay holds at most 512 connections (64 per address); a new
/// connection at a cap closes the connection that has waited longest without a request, so
/// idle ones cannot crowd out a sender — with the timeouts set long, only the caps are tested.
#[test]
fn two_thousand_idle_connections_under_a_1024_descriptor_limit_do_not_block_signed_webhooks() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mm = mattermost(&scratch).await;
        let mut setup = RelaySetup::new(&scratch, &mm);
        setup.nofile = Some(1024);
        setup.extra = args(["--header-timeout", "10m", "--body-timeout", "10m"]);
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        let pid = relay.child.id();
        let to = relay.listen;

        // 2,000 connections that never send a byte, from 40 addresses (50 each, under the per-peer
        // cap), then 200 from one address (over it).
        // At most 100 handshakes at a time, so none overflows the listener's accept queue (a
        // client counts such a connection as open while the relay has not got it yet).
        let mut connecting = JoinSet::new();
        let pace = Arc::new(tokio::sync::Semaphore::new(100));
        let sources = (0..40u8)
            .flat_map(|block| [Ipv4Addr::new(127, 0, 100, block + 1); 50])
            .chain([Ipv4Addr::new(127, 0, 101, 1); 200]);
        for from in sources {
            let pace = Arc::clone(&pace);
            connecting.spawn(async move {
                let _turn = pace.acquire_owned().await.unwrap();
                (from, connect_from(from, to).await)
            });
        }
        let mut idle = Vec::new();
        let mut one_peer = Vec::new();
        while let Some(joined) = connecting.join_next().await {
            match joined.unwrap() {
                (from, Ok(stream)) if from.octets()[2] == 101 => one_peer.push(stream),
                (_, Ok(stream)) => idle.push(stream),
                (_, Err(_)) => {}
            }
        }

        // Signed webhooks still get their 202 while all of those are held.
        let statuses = send_signed(&relay.url(), "IDLEHELD", 20).await;
        assert!(
            statuses.iter().all(|s| *s == Ok(202)),
            "signed webhooks during {} + {} idle connections: {statuses:?}",
            idle.len(),
            one_peer.len()
        );
        // Every connection was taken by the kernel and the relay (none waited in the backlog).
        assert!(
            idle.len() + one_peer.len() >= 2_000,
            "only {} + {} connections were established",
            idle.len(),
            one_peer.len()
        );
        let c = client();
        let established = idle.len() + one_peer.len();
        let accepted = eventually(
            "the relay to accept every established connection",
            Duration::from_secs(30),
            async || {
                let n = relay
                    .metric(&c, "cityd_relay_connections_accepted_total")
                    .await;
                (n >= established as f64).then_some(n)
            },
        )
        .await;
        let open = relay.metric(&c, "cityd_relay_connections").await;
        assert!(open <= MAX_CONNECTIONS as f64, "{open} connections open");
        let shed = relay
            .metric(&c, "cityd_relay_connections_evicted_total")
            .await
            + relay
                .metric(&c, "cityd_relay_connections_refused_total")
                .await;
        // Accepted = open + shed + closed by their clients (only the signed requests' ones).
        assert!(
            shed >= accepted - open - 20.0,
            "only {shed} of {accepted} accepted connections were shed, {open} are open"
        );
        let fds = open_descriptors(pid);
        assert!(
            fds <= MAX_CONNECTIONS + 64,
            "the relay holds {fds} descriptors"
        );
        // The one address keeps at most its 64; the relay closed the others.
        let over = one_peer.len() - MAX_PER_PEER;
        eventually(
            "the connections over the per-peer cap closed",
            Duration::from_secs(20),
            async || (one_peer.iter().filter(|s| is_closed(s)).count() >= over).then_some(()),
        )
        .await;

        delivered(&mm, "IDLEHELD", 20).await;
        drop(idle);
        drop(one_peer);
        let status = tokio::task::block_in_place(|| relay.terminate());
        assert!(status.success(), "{status}");
    });
}

/// One slowloris connection: `prefix` at once, then `bytes` at one byte a second. Returns how long
/// the relay let it live after the prefix and what it answered, or `None` if it was still open
/// after 30 s.
async fn trickle(
    from: Ipv4Addr,
    to: SocketAddr,
    prefix: Vec<u8>,
    bytes: Vec<u8>,
) -> Option<(Duration, Vec<u8>)> {
    let mut stream = connect_from(from, to).await.expect("connect");
    stream.write_all(&prefix).await.expect("send the prefix");
    let start = Instant::now();
    let (mut reader, mut writer) = stream.split();
    let read = async {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break seen,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    let write = async {
        for byte in bytes {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            // The attack's pace, not a synchronisation.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        std::future::pending::<()>().await;
    };
    let outcome = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::select! {
            seen = read => seen,
            () = write => unreachable!(),
        }
    })
    .await;
    outcome.ok().map(|seen| (start.elapsed(), seen))
}

/// Defect 1: 100 connections sending their header at 1 byte/s were all open after 30 s. With
/// `--header-timeout 2s` (and `--body-timeout 2s` for bodies trickled after a complete header)
/// every one is closed, and signed webhooks pass meanwhile.
#[test]
fn slowloris_headers_and_bodies_are_closed_by_the_timeouts() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mm = mattermost(&scratch).await;
        let mut setup = RelaySetup::new(&scratch, &mm);
        setup.nofile = Some(1024);
        setup.extra = args(["--header-timeout", "2s", "--body-timeout", "2s"]);
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        let to = relay.listen;

        let head = b"POST /sonarqube HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n".to_vec();
        let body = event("SLOWBODY000000000000");
        let slow_head = format!(
            "POST /sonarqube HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Sonar-Webhook-HMAC-SHA256: {}\r\n\r\n",
            body.len(),
            sign(&body)
        )
        .into_bytes();
        let mut slowlorises = JoinSet::new();
        for i in 0..100u8 {
            let head = head.clone();
            slowlorises.spawn(async move {
                let from = Ipv4Addr::new(127, 0, 110, i % 10 + 1);
                ("header", trickle(from, to, Vec::new(), head).await)
            });
        }
        // Slow bodies: the header arrives at once, the body at 1 byte/s.
        let mut bodies = JoinSet::new();
        for i in 0..20u8 {
            let from = Ipv4Addr::new(127, 0, 111, i % 4 + 1);
            let (head, body) = (slow_head.clone(), body.clone());
            bodies.spawn(async move { trickle(from, to, head, body).await });
        }

        let statuses = send_signed(&relay.url(), "SLOWLORIS", 5).await;
        assert!(
            statuses.iter().all(|s| *s == Ok(202)),
            "signed webhooks during the slowloris: {statuses:?}"
        );
        for joined in slowlorises.join_all().await {
            let (what, outcome) = joined;
            let (lived, answer) = outcome
                .unwrap_or_else(|| panic!("a slowloris {what} was still open after 30 s"));
            assert!(
                lived >= Duration::from_millis(1500),
                "closed after {lived:?}, before the 2 s header timeout: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        for outcome in bodies.join_all().await {
            let (lived, answer) = outcome.expect("a slow body was still open after 30 s");
            let answer = String::from_utf8_lossy(&answer);
            assert!(lived >= Duration::from_millis(1500), "after {lived:?}: {answer}");
            assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        }
        let c = client();
        assert!(
            relay
                .metric(&c, "cityd_relay_connections_timed_out_total")
                .await
                >= 100.0
        );
        delivered(&mm, "SLOWLORIS", 5).await;
        let status = tokio::task::block_in_place(|| relay.terminate());
        assert!(status.success(), "{status}");
    });
}

/// One hostile request: a 1 MiB body announced with `signature` (none, malformed or wrong). With
/// no or a malformed signature the sender writes only the header and must get the relay's 401
/// before sending a byte of the body; with a well-formed wrong one it sends the whole body.
async fn hostile_body(from: Ipv4Addr, to: SocketAddr, signature: Option<String>) -> (bool, String) {
    const LEN: usize = 1024 * 1024;
    let mut stream = connect_from(from, to).await.expect("connect");
    let mut head = format!(
        "POST /sonarqube HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {LEN}\r\n"
    );
    if let Some(sig) = &signature {
        head.push_str(&format!("X-Sonar-Webhook-HMAC-SHA256: {sig}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    // A well-formed (but wrong) signature gets its body read: send it all.
    let well_formed = signature.as_ref().is_some_and(|s| s.len() == 64);
    let chunks = if well_formed { 16 } else { 0 };
    for _ in 0..chunks {
        if stream.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break "closed".to_string(),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) => break format!("error {e}"),
            }
        }
    })
    .await
    .expect("the relay answers a hostile body within 30 s");
    let answer = if seen.is_empty() {
        format!("(nothing: {ended})")
    } else {
        String::from_utf8_lossy(&seen).into_owned()
    };
    (well_formed, answer)
}

/// Defect 2: 800 unsigned connections with 1 MiB bodies took the relay to 869 MiB. Now a missing
/// or malformed signature is refused before the body is read, the bodies of well-formed
/// signatures share one budget, and the relay's peak RSS stays under the documented bound.
#[test]
fn unsigned_bodies_are_refused_before_reading_and_memory_stays_bounded() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mm = mattermost(&scratch).await;
        let mut setup = RelaySetup::new(&scratch, &mm);
        // Room for all 864 at once: this test is about memory, the caps have their own.
        setup.extra = args(["--max-connections", "1000"]);
        let relay = tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        let pid = relay.child.id();
        let to = relay.listen;
        let baseline = vm_kib(pid, "VmRSS");

        let mut hostile = JoinSet::new();
        for i in 0..800u16 {
            // 16 addresses x 50: under the per-peer cap.
            let from = Ipv4Addr::new(127, 0, 120, (i % 16) as u8 + 1);
            let signature = match i % 2 {
                0 => None,
                _ => Some("not-a-signature".to_string()),
            };
            hostile.spawn(hostile_body(from, to, signature));
        }
        for i in 0..64u16 {
            let from = Ipv4Addr::new(127, 0, 121, (i % 8) as u8 + 1);
            hostile.spawn(hostile_body(from, to, Some("ab".repeat(32))));
        }
        let statuses = send_signed(&relay.url(), "UNSIGNEDFLOOD", 10).await;
        assert!(
            statuses.iter().all(|s| *s == Ok(202)),
            "signed webhooks during the flood: {statuses:?}"
        );
        let mut wrong_refused = 0;
        for (well_formed, answer) in hostile.join_all().await {
            let first = answer.lines().next().unwrap_or("(nothing)");
            if well_formed {
                // Read in full and checked (401), or, when the budget stayed full for the body
                // timeout on a loaded machine, told to retry (503: the connection is closed with
                // the body unread, so a reset may overtake that answer).
                match first {
                    "HTTP/1.1 401 Unauthorized" => wrong_refused += 1,
                    "HTTP/1.1 503 Service Unavailable" => {}
                    other if other.contains("reset") => {}
                    other => panic!("a wrong signature got: {other}"),
                }
            } else {
                assert_eq!(
                    first, "HTTP/1.1 401 Unauthorized",
                    "an unsigned body got it"
                );
            }
        }
        assert!(wrong_refused > 0, "no wrong signature was read and refused");
        let peak = vm_kib(pid, "VmHWM");
        let after = vm_kib(pid, "VmRSS");
        eprintln!(
            "relay RSS: {} MiB before, peak {} MiB, {} MiB after",
            baseline / 1024,
            peak / 1024,
            after / 1024
        );
        assert!(
            peak <= RSS_BOUND_MIB * 1024,
            "peak RSS {} MiB exceeds {RSS_BOUND_MIB} MiB",
            peak / 1024
        );
        let c = client();
        assert_eq!(
            relay
                .metric(&c, "cityd_relay_rejected_total{reason=\"signature\"}")
                .await,
            800.0 + f64::from(wrong_refused)
        );
        delivered(&mm, "UNSIGNEDFLOOD", 10).await;
        let status = tokio::task::block_in_place(|| relay.terminate());
        assert!(status.success(), "{status}");
    });
}

/// Defect 3: SIGTERM while a client holds a half-sent request hung the relay (the writer waited
/// for the connection). Now it refuses new connections at once, gives started requests the
/// grace, cuts them off, syncs the spool and exits 0; the event accepted before is delivered
/// after the restart, once.
#[test]
fn sigterm_ends_within_the_grace_while_a_request_is_half_sent() {
    let scratch = Scratch::new();
    runtime().block_on(async {
        let mut mm = mattermost(&scratch).await;
        let mut setup = RelaySetup::new(&scratch, &mm);
        setup.extra = args([
            "--header-timeout",
            "10m",
            "--body-timeout",
            "10m",
            "--shutdown-grace",
            "2s",
        ]);
        mm.double.go_down().await;
        let mut relay =
            tokio::task::block_in_place(|| setup.start("127.0.0.1:0".parse().unwrap(), 0));
        let to = relay.listen;
        let c = client();
        let accepted = event("BEFORESIGTERM0000000");
        assert_eq!(status_of_signed(&c, &relay.url(), &accepted).await, 202);

        // A signed request whose body stops half-way, and a header that stops half-way.
        let body = event("HALFSENT000000000000");
        let head = format!(
            "POST /sonarqube HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Sonar-Webhook-HMAC-SHA256: {}\r\n\r\n",
            body.len(),
            sign(&body)
        );
        let mut half_body = connect_from(Ipv4Addr::LOCALHOST, to).await.unwrap();
        half_body.write_all(head.as_bytes()).await.unwrap();
        half_body.write_all(&body[..body.len() / 2]).await.unwrap();
        let mut half_head = connect_from(Ipv4Addr::LOCALHOST, to).await.unwrap();
        half_head
            .write_all(&head.as_bytes()[..head.len() / 2])
            .await
            .unwrap();
        // Both are in the relay's hands before the signal.
        eventually("two open connections", Duration::from_secs(10), async || {
            (relay.metric(&c, "cityd_relay_connections").await >= 2.0).then_some(())
        })
        .await;

        let kill = require_tool("kill", "procps");
        let signalled = Instant::now();
        assert!(
            Command::new(kill)
                .args(["-TERM", &relay.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        // New connections are refused while the started requests have their grace.
        eventually(
            "the listener closed after SIGTERM",
            Duration::from_millis(1500),
            async || {
                TcpStream::connect(to).await.is_err().then_some(())
            },
        )
        .await;
        assert!(
            relay.child.try_wait().unwrap().is_none(),
            "the relay waits for the half-sent requests until the grace ends"
        );
        let status = tokio::task::block_in_place(|| {
            let end = signalled + Duration::from_secs(2 + 8);
            loop {
                if let Some(status) = relay.child.try_wait().unwrap() {
                    return status;
                }
                assert!(
                    Instant::now() < end,
                    "the relay still runs {:?} after SIGTERM with a 2 s grace:\n{}",
                    signalled.elapsed(),
                    relay.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        assert!(status.success(), "{status}\n{}", relay.log());
        assert!(
            read_until_closed(&mut half_body, Duration::from_secs(5))
                .await
                .is_some()
        );

        // The event accepted before the signal survived in the spool and posts once.
        mm.double.come_back().await.unwrap();
        let relay = tokio::task::block_in_place(|| setup.start(to, 1));
        let posts = eventually("the accepted event posted", Duration::from_secs(30), async || {
            let p = posts_in(&mm, "alerts");
            (!p.is_empty()).then_some(p)
        })
        .await;
        eventually("nothing undelivered", Duration::from_secs(30), async || {
            (relay.metric(&c, "cityd_relay_undelivered").await == 0.0).then_some(())
        })
        .await;
        let posts_now = posts_in(&mm, "alerts");
        assert_eq!(posts_now.len(), 1, "{posts:#?}");
        assert_eq!(
            posts_now[0].props["cityd_relay_key"],
            "task:BEFORESIGTERM0000000"
        );
        tokio::task::block_in_place(|| assert!(relay.terminate().success()));
    });
}
