//! The HTTP time-outs every server and client of the testbed uses, chosen
//! together (issue 13 part 3: "the balancer answered some calls with 408
//! and *received unexpected message*").
//!
//! What happened: actix-web gives a new connection 5 s by default to
//! deliver its first request head, then answers `408 Request Timeout` and
//! closes; it closes a kept-alive connection after 5 s idle. On a machine
//! so loaded that a server thread waits seconds for a core, the timer had
//! often expired by the time the thread read a request that had arrived
//! in time, so the server blamed its client; and a 408 written on a
//! connection that the client held idle in its pool is, to hyper (the
//! replayer's client), a reply to nothing: "received unexpected message
//! from connection". The clients, for their part, kept idle connections
//! for 60-90 s, much longer than the servers' 5 s, so a call could be
//! written onto a connection the server was closing.
//!
//! The rule now: a server waits [`REQUEST_HEAD`] for a request head (long
//! enough that CPU starvation does not trip it, short enough to shed a
//! client that opens connections and sends nothing) and keeps an idle
//! connection [`SERVER_KEEP_ALIVE`]; every client of ours drops an idle
//! connection after [`CLIENT_POOL_IDLE`], well before a server would, so
//! the server is never the first to close a connection a client may reuse.
//! The balancer's and the worker's hot-path client (`keepalive-http`)
//! checks a pooled connection before reusing it, which catches a close or
//! a stray 408 whichever side timed out.

use std::time::Duration;

/// How long a server (balancer, worker, stub worker) waits for a
/// connection's request head before answering 408 and closing
/// (actix-web's `client_request_timeout`; its default is 5 s).
pub const REQUEST_HEAD: Duration = Duration::from_secs(60);

/// How long a server keeps an idle keep-alive connection open (actix-web's
/// `keep_alive`; its default is 5 s).
pub const SERVER_KEEP_ALIVE: Duration = Duration::from_secs(75);

/// How long our clients (replayer, closed-loop load, the balancer's
/// fan-out and health checks, the experiment runner) keep an idle pooled
/// connection: shorter than [`SERVER_KEEP_ALIVE`], so they close first.
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_let_go_of_idle_connections_before_servers_do() {
        assert!(CLIENT_POOL_IDLE < SERVER_KEEP_ALIVE);
        assert!(
            REQUEST_HEAD > Duration::from_secs(5),
            "beyond actix's default"
        );
    }
}
