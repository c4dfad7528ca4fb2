//! Benchmark helper for bench/relay.sh: `sink` is a minimal Mattermost incoming-webhook endpoint
//! (answers `ok`, counts posts); `load` sends signed SonarQube events with unique task ids at a
//! fixed concurrency and prints throughput and latency percentiles as one JSON line.
//!
//! cargo run --release --example relay_load -- sink --listen 127.0.0.1:18065
//! cargo run --release --example relay_load -- load --url http://127.0.0.1:9180/sonarqube \
//!     --secret-file S --body-file B --events 50000 --concurrency 64

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use cityd::relay::signature::Verifier;
use cityd::secrets::Secret;

const REAL_TASK: &str = "AXgTFfXRZCzhMRNj54bo";

fn usage() -> ! {
    eprintln!(
        "usage: relay_load sink --listen ADDR\n       relay_load load --url URL --secret-file FILE --body-file FILE --events N --concurrency C"
    );
    std::process::exit(2)
}

fn flag(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    match args.first().map(String::as_str) {
        Some("sink") => {
            let listen: SocketAddr = flag(&args, "--listen")
                .unwrap_or_else(|| usage())
                .parse()
                .expect("--listen ADDR");
            runtime.block_on(sink(listen));
        }
        Some("load") => runtime.block_on(load(&args)),
        _ => usage(),
    }
}

async fn sink(listen: SocketAddr) {
    let posts = Arc::new(AtomicU64::new(0));
    let app = Router::new()
        .route(
            "/hooks/{id}",
            post(
                |State(n): State<Arc<AtomicU64>>, _body: axum::body::Bytes| async move {
                    n.fetch_add(1, Relaxed);
                    "ok"
                },
            ),
        )
        .route(
            "/count",
            get(|State(n): State<Arc<AtomicU64>>| async move { n.load(Relaxed).to_string() }),
        )
        .with_state(posts);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .expect("bind the sink");
    println!("sink listening on {}", listener.local_addr().unwrap());
    axum::serve(listener, app).await.expect("serve");
}

async fn load(args: &[String]) {
    let url = flag(args, "--url").unwrap_or_else(|| usage());
    let secret = std::fs::read_to_string(PathBuf::from(
        flag(args, "--secret-file").unwrap_or_else(|| usage()),
    ))
    .expect("read the secret");
    let template = std::fs::read_to_string(PathBuf::from(
        flag(args, "--body-file").unwrap_or_else(|| usage()),
    ))
    .expect("read the body template");
    let events: usize = flag(args, "--events")
        .unwrap_or_else(|| usage())
        .parse()
        .expect("--events N");
    let concurrency: usize = flag(args, "--concurrency")
        .unwrap_or_else(|| usage())
        .parse()
        .expect("--concurrency C");
    let run_id = std::process::id();
    let verifier = Verifier::new(&Secret::new(secret.trim().to_string()));
    // Bodies are prepared before the clock starts: signing is the sender's cost, not the relay's.
    let bodies: Arc<Vec<(Vec<u8>, String)>> = Arc::new(
        (0..events)
            .map(|i| {
                let body = template
                    .replace(REAL_TASK, &format!("B{run_id:08}{i:011}"))
                    .into_bytes();
                let sig = verifier.sign(&body);
                (body, sig)
            })
            .collect(),
    );
    cityd::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client");
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, url, bodies, next, errors) = (
            client.clone(),
            url.clone(),
            Arc::clone(&bodies),
            Arc::clone(&next),
            Arc::clone(&errors),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Relaxed);
                let Some((body, sig)) = bodies.get(i) else {
                    return latencies;
                };
                let t = Instant::now();
                let result = client
                    .post(&url)
                    .header("Content-Type", "application/json; charset=utf-8")
                    .header("X-Sonar-Webhook-HMAC-SHA256", sig)
                    .body(body.clone())
                    .send()
                    .await;
                let ok = match result {
                    Ok(r) => {
                        let good = r.status().is_success();
                        let _ = r.bytes().await;
                        good
                    }
                    Err(_) => false,
                };
                latencies.push(t.elapsed().as_micros() as u64);
                if !ok {
                    errors.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    let mut all = Vec::with_capacity(events);
    for t in tasks {
        all.extend(t.await.expect("a sender task"));
    }
    let seconds = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "events": events,
            "concurrency": concurrency,
            "errors": errors.load(Relaxed),
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "events_per_second": (events as f64 / seconds).round(),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": pct(1.0),
        })
    );
}
