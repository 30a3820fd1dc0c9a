//! Connects to the backend, TLS first when asked, and drives the login
//! machine over the connection.

use glommio::net::TcpStream;

use super::{BackendTls, ServerContext, Stream, Trace};

use crate::protocol::backend::BackendStep;
use crate::protocol::{BackendOutcome, BackendPlan};

const READ_CHUNK: usize = 4096;

/// Returns the logged-in stream with the bytes read past the login reply,
/// or `None` and the failure to report. The whole login, connect and TLS
/// handshake included, takes at most `timeout`: a backend trickling its
/// greeting a byte at a time would pass any per-read limit. `tls`: the
/// backend is spoken to over TLS (`proxy_ssl`, `Auth-SSL-Backend`).
/// `preface`: the PROXY header (`proxy_protocol`), sent first, under TLS.
pub(super) async fn login(
    plan: BackendPlan,
    tls: Option<&BackendTls>,
    ctx: &ServerContext,
    trace: &Trace,
    preface: Option<Vec<u8>>,
) -> (Option<(Stream, Vec<u8>)>, BackendOutcome) {
    let addr = plan.addr;
    let server = &ctx.server;
    if server.timeout.is_zero() {
        return steps(plan, tls, ctx, trace, preface).await;
    }
    match glommio::timer::timeout(server.timeout, async {
        Ok(steps(plan, tls, ctx, trace, preface).await)
    })
    .await
    {
        Ok(done) => done,
        Err(_) => {
            say!(ctx, trace, Error, "backend {addr} timed out during login");
            (None, BackendOutcome::Failed { client_reply: None })
        }
    }
}

async fn steps(
    mut plan: BackendPlan,
    tls: Option<&BackendTls>,
    ctx: &ServerContext,
    trace: &Trace,
    preface: Option<Vec<u8>>,
) -> (Option<(Stream, Vec<u8>)>, BackendOutcome) {
    let server = &ctx.server;
    let timeout = server.timeout;
    let failed = BackendOutcome::Failed { client_reply: None };
    let tcp = match TcpStream::connect_timeout(plan.addr, timeout).await {
        Ok(s) => s,
        Err(e) => {
            crate::metrics::inc(server.protocol, crate::metrics::Counter::BackendConnectErrors);
            say!(ctx, trace, Error, "connect() to {} failed: {e}", plan.addr);
            return (None, failed);
        }
    };
    let _ = tcp.set_nodelay(true);
    if server.so_keepalive {
        let _ = crate::runtime::sys::with_socket(&tcp, |s| s.set_keepalive(true));
    }
    // Reads are bounded by the whole login's timeout (`login`).
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut tcp = tcp;
    if let Some(preface) = preface {
        // Before the backend's greeting, and before TLS: the header is the
        // connection's, not the session's.
        if let Err(e) = futures_lite::AsyncWriteExt::write_all(&mut tcp, &preface).await {
            say!(
                ctx,
                trace,
                Error,
                "sending the PROXY protocol header to backend {} failed: {e}",
                plan.addr
            );
            return (None, failed);
        }
    }
    let mut stream = match tls {
        None => Stream::Plain(tcp),
        Some(tls) => match tls
            .connector
            .connect(
                tls.names.server_name(plan.addr),
                crate::tls::ktls::RecordWatch::new(tcp),
            )
            .await
        {
            Ok(private) => Stream::Tls(Box::new(private.into())),
            Err(e) => {
                say!(
                    ctx,
                    trace,
                    Error,
                    "TLS handshake with backend {} failed: {e}",
                    plan.addr
                );
                return (None, failed);
            }
        },
    };
    let mut pending = Vec::with_capacity(READ_CHUNK);
    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        while let Some(step) = plan.login.poll() {
            match step {
                BackendStep::Send(bytes) => {
                    if let Err(e) = super::send(&mut stream, &bytes).await {
                        say!(ctx, trace, Error, "writing to backend {} failed: {e}", plan.addr);
                        return (None, failed);
                    }
                }
                BackendStep::Done(outcome) => {
                    if let BackendOutcome::Failed { .. } = outcome {
                        say!(
                            ctx,
                            trace,
                            Error,
                            "backend {} refused the login or sent an invalid response",
                            plan.addr
                        );
                        return (None, outcome);
                    }
                    stream.set_write_timeout(None);
                    return (Some((stream, pending)), outcome);
                }
            }
        }
        let n = match std::future::poll_fn(|cx| stream.poll_read_eager(cx, &mut chunk)).await {
            Ok(0) => {
                say!(
                    ctx,
                    trace,
                    Error,
                    "backend {} closed the connection during login",
                    plan.addr
                );
                return (None, failed);
            }
            Ok(n) => n,
            Err(e) => {
                say!(ctx, trace, Error, "reading from backend {} failed: {e}", plan.addr);
                return (None, failed);
            }
        };
        pending.extend_from_slice(&chunk[..n]);
        let used = plan.login.feed(&pending);
        pending.drain(..used);
    }
}
