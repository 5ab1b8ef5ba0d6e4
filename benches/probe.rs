//! What one reachability probe costs the exporter: a full SFTP probe
//! (connect, read the SSH identification line, close) against a loopback
//! listener, and a round of 50 such targets probed concurrently. The
//! network round trip to a real endpoint dominates in production; this
//! measures our own work so a regression in it shows.
//!
//! Run: `cargo bench --bench probe -- --warm-up-time 1 --measurement-time 3`

use std::time::Duration;

use aws_transfer_exporter::metrics::{Limits, Metrics};
use aws_transfer_exporter::probe::{self, ProbeConfig, Protocol, Target};
use criterion::{criterion_group, criterion_main, Criterion};
use prometheus::Registry;
use tokio::io::AsyncWriteExt;

/// A loopback listener that greets every connection like sshd and closes.
async fn banner_listener() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1 bench\r\n").await;
            });
        }
    });
    port
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let port = rt.block_on(banner_listener());
    let t = Target {
        server_id: "s-0123456789abcdef0".into(),
        host: "127.0.0.1".into(),
        port,
        protocol: Protocol::Sftp,
    };
    let timeout = Duration::from_secs(2);
    c.bench_function("probe/sftp_banner_loopback", |b| {
        b.iter(|| {
            let r = rt.block_on(probe::probe(&t, timeout, timeout));
            assert!(r.outcome.is_ok());
        })
    });

    let reg = Registry::new();
    let m = Metrics::new(&reg, Limits::default());
    let cfg = ProbeConfig::default();
    let targets: Vec<Target> = (0..50)
        .map(|i| Target {
            server_id: format!("s-{i:017x}"),
            ..t.clone()
        })
        .collect();
    c.bench_function("probe/round_50_targets_loopback", |b| {
        b.iter(|| rt.block_on(probe::round(&m, &cfg, &targets)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
