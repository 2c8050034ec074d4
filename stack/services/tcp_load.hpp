// tcp-load: the stateful TCP load generator of `clients:` (host and router
// modes), as TRex's advanced stateful mode or wrk are used, on the socket API
// (stack/socket/tcp_socket.hpp).
//
// Model. A generator's connections are shared out over the workers; worker
// w opens its share from its Service::poll, so Tcp::connect picks source
// ports whose replies land on w (the active-open rule). Open loop (`rate`):
// connection k of worker w is due at start + k x W / rate in TSC cycles; a
// poll opens every connection due (a stall is caught up, so the count over
// the run is exact). Closed loop (`concurrency`): a poll opens connections
// until its share is open. Either stops at `connections` (shared out) or
// `duration_ms`. Until the first connection of the generator ends its
// handshake (or fails), each worker opens only that one: the target's
// address may still be resolving, and ARP holds only a few packets.
//
// Each connection runs `requests` transactions one after the other on the
// same connection (keep-alive): raw (send request_bytes of the tcp-source
// pattern, read response_bytes; anything more is a bad response) or an
// HTTP/1.1 GET (status line, header fields, a Content-Length body; a
// response without a length, or chunked, is a bad response), then closes
// with FIN or RST. Connection, first byte and whole-transaction latencies go
// into log-linear histograms.
//
// Sessions. A connection's state is a Session from a fixed pool (max_open,
// shared out over the workers and allocated at start): the opener takes one
// from its own free ring, and whichever worker ends the connection (the one
// handling its group, under the group's lock) gives it back (a
// multi-producer ring). Nothing is allocated per connection or per request.
// A session's fields are touched only under its connection's group lock,
// except `deadline`, an atomic the opener scans (every timeout/32, at least
// every millisecond) to abort what timed out through Tcp::with, which
// takes the lock and looks again.
//
// Counters. Every counter and histogram is per worker and written only by
// that worker (the one running the callback or the poll); view() sums them.
// TCP's own view (our bytes the peer acknowledged, the peer's received in
// order, bytes on the wire and retransmitted) comes from each connection's
// Tcb counters (TcpConn::counters): every callback adds what they moved by
// since the session last looked, so open sessions count as they progress.
// The peak of concurrently established connections is sampled from those
// per-worker counts (worker 0 at each timeout scan, every >= 1 ms, and each
// read of the view): a peak shorter than that can be missed.
#pragma once

#include <memory>

#include "conf/config.hpp"
#include "stack/services/udp_services.hpp"

namespace ngstack::stack::tcp {
class Tcp;
}

namespace ngstack::stack::services {

// Made from a `clients:` generator; errors name its position.
Result<std::unique_ptr<Service>> make_tcp_load(const conf::ClientConfig& c, tcp::Tcp& tcp, unsigned workers,
                                               uint64_t tsc_hz, unsigned index);

}  // namespace ngstack::stack::services
