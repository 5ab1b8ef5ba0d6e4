//! Writes the benchmark corpus (`src/corpus.rs`) to files, for comparisons
//! with tools that read logs from disk (scripts/bench-mtail.sh):
//!
//!     cargo run --release --example corpus_dump -- 100000 OUT_DIR
//!
//! `OUT_DIR/events.jsonl`: one CloudWatch event per line (`logGroupName`,
//! `logStreamName`, `eventId`, `timestamp`, `message`), the input of
//! `aws-transfer-exporter classify`. `OUT_DIR/messages.log`: the bare
//! messages, one per line, as a log shipper would hand them to mtail (the
//! group and stream names are lost there).

use std::io::{BufWriter, Write};

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .expect("usage: corpus_dump N OUT_DIR");
    let dir = std::path::PathBuf::from(args.next().expect("usage: corpus_dump N OUT_DIR"));
    std::fs::create_dir_all(&dir)?;
    let events = aws_transfer_exporter::corpus::mixed(n, 42);
    let mut jsonl = BufWriter::new(std::fs::File::create(dir.join("events.jsonl"))?);
    let mut plain = BufWriter::new(std::fs::File::create(dir.join("messages.log"))?);
    for e in &events {
        let line = serde_json::json!({
            "logGroupName": e.log_group,
            "logStreamName": e.log_stream,
            "eventId": e.event_id,
            "timestamp": e.timestamp_ms,
            "message": e.message,
        });
        serde_json::to_writer(&mut jsonl, &line)?;
        jsonl.write_all(b"\n")?;
        plain.write_all(e.message.as_bytes())?;
        plain.write_all(b"\n")?;
    }
    jsonl.flush()?;
    plain.flush()
}
