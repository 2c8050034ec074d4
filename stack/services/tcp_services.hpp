// The built-in TCP services of `services:` (host and router modes), each
// written on the socket API (stack/socket/tcp_socket.hpp) as a user's
// service would be, event driven and with no per-connection allocation:
//
//   tcp-echo     every byte back (RFC 862); when the peer half-closes, what
//                it sent goes back, then our FIN
//   tcp-discard  reads and counts (RFC 863); closes after the peer's FIN
//   tcp-source   on accept sends `bytes` bytes (0: until the peer closes),
//                then FIN; what the peer sends is read and dropped
//   http         an HTTP/1.1 responder (stack/services/http.hpp)
#pragma once

#include <memory>

#include "conf/config.hpp"
#include "conf/result.hpp"
#include "stack/services/udp_services.hpp"
#include "stack/tcp/tcp.hpp"

namespace ngstack::stack::services {

Result<std::unique_ptr<Service>> make_tcp_service(const conf::ServiceConfig& c, tcp::Tcp& tcp, unsigned workers);

}  // namespace ngstack::stack::services
