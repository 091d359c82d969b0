// transfer_engine_metadata_server: an http metadata server for the transfer engine's
// --metadata_type=http (docs/metadata.md). It keeps entries in memory only: after a
// restart, engines publish theirs again within their keep-alive period.
//
//   transfer_engine_metadata_server --host=0.0.0.0 --port=8080
//   engines: --metadata_type=http --metadata_servers=<host>:8080
//
// Prints "listening on http://<host>:<port>" once it accepts requests (with --port=0,
// the port it picked) and exits 0 on SIGINT or SIGTERM after finishing the requests
// in progress.
#include <gflags/gflags.h>
#include <httplib.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "metadata_routes.h"
#include "metadata_store.h"

DEFINE_string(host, "0.0.0.0",
              "Address to bind (the server has no authentication: bind to a "
              "trusted network)");
DEFINE_int32(port, 8080, "Port to listen on; 0 picks a free one");
DEFINE_uint64(max_body_bytes, 1 << 20, "Largest accepted value (request body); more is 413");
DEFINE_uint64(max_total_bytes, 1ull << 30, "Bound on all keys and values held; more is 507");
DEFINE_int32(threads, 16, "Worker threads; each serves one connection at a time");
DEFINE_int32(io_timeout_s, 5, "Seconds a connection may stall in a read or write");
DEFINE_bool(log_requests, false, "Log one line per request on stderr");

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

}  // namespace

#if defined(__SANITIZE_THREAD__)
// Debian's libcpp-httplib.so is not built with ThreadSanitizer: TSan sees the memory
// it touches through interceptors but none of its locking, and reports races that
// are not there. Ignore interceptor calls made from that library; our code stays
// checked.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libcpp-httplib.so\n";
}
#endif

int main(int argc, char** argv) {
  gflags::SetUsageMessage(
      "http metadata server for the transfer engine (GET/PUT/DELETE "
      "/metadata?key=...)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  if (argc > 1) return Fail(std::string("unexpected argument '") + argv[1] + "'");
  if (FLAGS_port < 0 || FLAGS_port > 65535) return Fail("--port must be in [0, 65535]");
  if (FLAGS_threads < 1 || FLAGS_threads > 1024) return Fail("--threads must be in [1, 1024]");
  if (FLAGS_io_timeout_s < 1) return Fail("--io_timeout_s must be at least 1");
  if (FLAGS_max_body_bytes == 0) return Fail("--max_body_bytes must be positive");

  // Signals go to one thread that waits for them; block them before any other thread
  // starts so that every thread inherits the mask. SIGUSR1 wakes that thread when the
  // server ends on its own.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-reply must not kill the server

  te::metadata_server::MetadataStore store(FLAGS_max_total_bytes);
  httplib::Server server;
  const int threads = FLAGS_threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_read_timeout(FLAGS_io_timeout_s, 0);
  server.set_write_timeout(FLAGS_io_timeout_s, 0);
  // cpp-httplib serves a connection per worker thread until it closes: an idle
  // keep-alive connection is let go after 2 s, so it cannot hold a worker long.
  server.set_keep_alive_timeout(std::min(FLAGS_io_timeout_s, 2));
  server.set_tcp_nodelay(true);  // replies are small: no Nagle delay on them
  // cpp-httplib's default also sets SO_REUSEPORT, which would let a second server
  // bind the same port and split the clients between two separate maps.
  server.set_socket_options([](int sock) {
    int on = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
  });
  te::metadata_server::RouteOptions options;
  options.max_body_bytes = FLAGS_max_body_bytes;
  options.log_requests = FLAGS_log_requests;
  te::metadata_server::InstallRoutes(&server, &store, options);

  int port = FLAGS_port;
  if (port == 0) {
    port = server.bind_to_any_port(FLAGS_host);
    if (port < 0) return Fail("cannot bind " + FLAGS_host + " (any port)");
  } else if (!server.bind_to_port(FLAGS_host, port)) {
    return Fail("cannot bind " + FLAGS_host + ":" + std::to_string(port) +
                " (in use, or not an address of this host?)");
  }
  const bool v6 = FLAGS_host.find(':') != std::string::npos;
  std::printf("listening on http://%s:%d\n", (v6 ? "[" + FLAGS_host + "]" : FLAGS_host).c_str(),
              port);
  std::fflush(stdout);

  std::atomic<bool> finished{false};
  std::atomic<bool> signalled{false};
  std::thread waiter([&server, &finished, &signalled, signals] {
    int sig = 0;
    while (sigwait(&signals, &sig) != 0) {
    }
    if (sig != SIGUSR1) {
      signalled = true;
      std::fprintf(stderr, "signal %d: shutting down\n", sig);
    }
    // stop() does nothing before listen_after_bind has started: repeat until it ends.
    while (!finished.load()) {
      server.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const bool ok = server.listen_after_bind();
  finished = true;
  pthread_kill(waiter.native_handle(), SIGUSR1);  // wakes the waiter if no signal came
  waiter.join();
  std::printf("stopped (%zu keys held)\n", store.size());
  gflags::ShutDownCommandLineFlags();
  return ok || signalled ? 0 : 1;
}
