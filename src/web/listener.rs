//! Accepting connections: TCP, then (when the web config has TLS) a TLS
//! handshake under a deadline, giving a stream hyper can serve.
//!
//! The handshake runs in the connection's own task (see [`handshake`]), so
//! a slow or silent client never holds up the accept loop. Plain HTTP sent
//! to a TLS listener gets a short `400` in plain text saying so (what Go's
//! net/http, and so every toolkit exporter, answers) instead of a reset
//! that leaves the user guessing.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::Edge;

/// How long a client may take to complete the TLS handshake. A scraper
/// does it in milliseconds; the bound frees the task (and lets shutdown
/// finish) when a client connects and says nothing.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The answer to plain HTTP on a TLS port.
const PLAIN_HTTP_ON_TLS: &[u8] = b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// An accepted connection, TLS or not.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// Why a connection was dropped before HTTP.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake timed out after {0:?}")]
    Timeout(Duration),
    #[error("plain HTTP sent to a TLS listener (answered 400)")]
    PlainHttp,
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
}

/// A bound listener and the edge it serves under.
pub struct Listener {
    tcp: TcpListener,
    edge: Arc<Edge>,
}

impl Listener {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr, edge: Arc<Edge>) -> io::Result<Listener> {
        Ok(Listener {
            tcp: TcpListener::bind(addr).await?,
            edge,
        })
    }

    /// Wraps an already bound listener.
    pub fn from_tcp(tcp: TcpListener, edge: Arc<Edge>) -> Listener {
        Listener { tcp, edge }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }

    pub fn edge(&self) -> &Arc<Edge> {
        &self.edge
    }

    /// Accepts one TCP connection. Complete it with [`handshake`] in the
    /// connection's task.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        self.tcp.accept().await
    }
}

/// Turns an accepted TCP stream into a [`Conn`]: as is when the edge has
/// no TLS, else after a TLS handshake with the edge's current certificate
/// (re-read if its files changed) under [`TLS_HANDSHAKE_TIMEOUT`].
pub async fn handshake(edge: &Edge, tcp: TcpStream) -> Result<Conn, HandshakeError> {
    handshake_within(edge, tcp, TLS_HANDSHAKE_TIMEOUT).await
}

/// [`handshake`] with a chosen deadline (tests).
pub async fn handshake_within(
    edge: &Edge,
    tcp: TcpStream,
    timeout: Duration,
) -> Result<Conn, HandshakeError> {
    let Some(config) = edge.current().tls.clone() else {
        return Ok(Conn::Plain(tcp));
    };
    let work = async move {
        let mut tcp = tcp;
        // A TLS ClientHello starts with record type 22 (0x16); an HTTP
        // request starts with a method name in ASCII letters.
        let mut first = [0u8; 1];
        let n = tcp.peek(&mut first).await.map_err(HandshakeError::Tls)?;
        if n == 1 && first[0].is_ascii_uppercase() {
            let _ = tcp.write_all(PLAIN_HTTP_ON_TLS).await;
            let _ = tcp.shutdown().await;
            return Err(HandshakeError::PlainHttp);
        }
        TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map(|s| Conn::Tls(Box::new(s)))
            .map_err(HandshakeError::Tls)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(HandshakeError::Timeout(timeout)),
    }
}

/// How long a client may take to send its request headers, on every
/// listener. Scrapers and Firehose send them at once; the bound stops an
/// idle or slow connection from holding a task (and shutdown) forever.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves HTTP/1.1 on `listener` until `cancel` fires: each connection gets
/// the edge's handshake (TLS when configured), then `handle` per request;
/// on cancel, connections finish their request in flight (hyper's graceful
/// shutdown). The one connection loop of every listener (metrics and push).
/// Connection tasks run on `tracker`; `what` names the listener in logs.
pub async fn serve_connections<H, F>(
    listener: &Listener,
    tracker: &tokio_util::task::TaskTracker,
    cancel: &tokio_util::sync::CancellationToken,
    what: &'static str,
    handle: H,
) where
    H: Fn(hyper::Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = hyper::Response<http_body_util::Full<bytes::Bytes>>>
        + Send
        + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(err) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(listener = what, error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (edge, cancel, handle) = (listener.edge().clone(), cancel.clone(), handle.clone());
        tracker.spawn(async move {
            let handshake = tokio::select! {
                _ = cancel.cancelled() => return,
                h = handshake(&edge, stream) => h,
            };
            let stream = match handshake {
                Ok(s) => s,
                Err(err) => {
                    tracing::debug!(listener = what, peer = %peer, error = %err, "connection refused before HTTP");
                    return;
                }
            };
            let svc = hyper::service::service_fn(move |req| {
                let handle = handle.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                tracing::debug!(listener = what, peer = %peer, error = %err, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// An edge with TLS on, from a certificate `openssl` makes.
    fn tls_edge(dir: &std::path::Path) -> Edge {
        let ok = std::process::Command::new("openssl")
            .current_dir(dir)
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=t",
                "-keyout",
                "k.pem",
                "-out",
                "c.pem",
            ])
            .output()
            .expect("openssl")
            .status
            .success();
        assert!(ok, "openssl req failed");
        let web = dir.join("web.yml");
        std::fs::write(
            &web,
            "tls_server_config: {cert_file: c.pem, key_file: k.pem}\n",
        )
        .unwrap();
        Edge::load(&web).unwrap()
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn silent_client_times_out_and_plain_http_gets_400() {
        let dir = tempfile::tempdir().unwrap();
        let edge = tls_edge(dir.path());
        assert!(edge.tls_enabled());

        let (_client, server) = pair().await;
        let r = handshake_within(&edge, server, Duration::from_millis(200)).await;
        assert!(
            matches!(r, Err(HandshakeError::Timeout(_))),
            "{:?}",
            r.err()
        );

        let (mut client, server) = pair().await;
        client
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let r = handshake_within(&edge, server, Duration::from_secs(5)).await;
        assert!(matches!(r, Err(HandshakeError::PlainHttp)), "{:?}", r.err());
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.0 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("Client sent an HTTP request to an HTTPS server.\n"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn without_tls_the_stream_passes_through() {
        let (_client, server) = pair().await;
        let c = handshake(&Edge::plain(), server).await.unwrap();
        assert!(!c.is_tls());
    }
}
