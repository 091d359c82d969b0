// te_test_peer: the "target" process of the cross-process integration tests.
//
// Starts a real te::TransferEngine on 127.0.0.1 or --rpc_host (p2p metadata, otherwise
// default config), allocates and registers buffers filled with a deterministic pattern, prints
//   READY <segment_name> <base0> <len0> <base1> <len1> ...
// and then serves until stdin closes, SIGTERM arrives or EXIT is read. Flags:
//   --buffers=N            number of buffers (default 1)
//   --size=BYTES           size of each buffer (default 1 MiB)
//   --permission=P[,P...]  rw | ro | local per buffer; the last one repeats (default rw)
//   --fill=SEED            pattern seed; buffer i holds pattern BufferSeed(SEED, i)
//   --transfer_timeout_ms=MS, --connect_timeout_ms=MS, --log_level=L
//   --machine_id=ID        default "te-test-peer-<pid>", so peers look like other hosts
//   --shm=1                allocate the buffers in POSIX shared memory
//   --location=L           allocate the buffers at L (cpu:N, or cuda:N in a CUDA build)
//   --transports=a,b       the engine's transports (default: the config's default)
//   --rpc_port=P           fixed RPC port, so a restarted peer keeps its segment name
//   --rpc_host=H           the engine's rpc_host (default 127.0.0.1; empty: the
//                          engine's default, all interfaces)
//   --cluster_secret=S     the engine's cluster secret
//   --ucx_tls=T            the ucx transport's UCX_TLS (e.g. tcp, or posix,sysv,cma)
//
// Commands on stdin, one per line; every command answers exactly one line:
//   PING                                 -> PONG
//   CHECKSUM <addr> <len>                -> CHECKSUM <hex16> (FNV-1a of its memory)
//   NOTIFY?                              -> NOTIFICATIONS <n> (<xfrom> <xmessage>)*
//   SEND <segment> <xmessage>            -> OK              (sendNotification)
//   REGISTER <size> [rw|ro|local]        -> REGISTERED <base> <len> <index>
//   UNREGISTER <addr>                    -> OK
//   REREGISTER <addr> <rw|ro|local>      -> OK  (unregister, register again with P)
//   XFER <READ|WRITE> <segment> <local_addr> <remote_addr> <len>
//                                        -> DONE <Completed|Failed|Pending> <bytes> <xerror>
//   EXIT                                 -> BYE, then exits
// Failures answer "ERR <text>". Tokens starting with "x" are hex-encoded bytes.
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "memory/device_memory.h"
#include "memory/memory.h"
#include "te/transfer_engine.h"
#include "test_util.h"

namespace {

volatile sig_atomic_t g_terminate = 0;

#if defined(__SANITIZE_THREAD__)
#define TE_PEER_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define TE_PEER_NO_TSAN
#endif

// te_test::Checksum over memory that engine threads wrote on behalf of the test
// process. The test orders those writes before this read through its own process
// (transfer completion, then a command on our stdin), which ThreadSanitizer cannot
// see; left instrumented, every byte would be reported as a race.
TE_PEER_NO_TSAN uint64_t ChecksumOfTransferredMemory(const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = 0xCBF29CE484222325ull;
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 0x100000001B3ull;
  }
  return h;
}

void OnSigterm(int) { g_terminate = 1; }

struct PeerBuffer {
  void* base = nullptr;
  size_t length = 0;
  uint64_t index = 0;
  bool registered = false;
  bool on_device = false;  // GPU memory: read and written through host copies
};

std::optional<te::Permission> ParsePermission(const std::string& s) {
  if (s == "rw") return te::Permission::kRemoteReadWrite;
  if (s == "ro") return te::Permission::kRemoteRead;
  if (s == "local") return te::Permission::kLocalOnly;
  return std::nullopt;
}

bool ParseU64(const std::string& s, uint64_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s.c_str(), &end, 0);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  *out = v;
  return true;
}

void Reply(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> tokens;
  std::istringstream in(line);
  std::string t;
  while (in >> t) tokens.push_back(t);
  return tokens;
}

class Peer {
 public:
  Peer(std::unique_ptr<te::TransferEngine> engine, uint64_t fill, bool shm, std::string location)
      : engine_(std::move(engine)), fill_(fill), shm_(shm), location_(std::move(location)) {}

  ~Peer() {
    for (auto& [name, handle] : segments_) engine_->closeSegment(handle);
  }

  te::TransferEngine& engine() { return *engine_; }
  const std::vector<PeerBuffer>& buffers() const { return buffers_; }

  // Allocates, fills and registers one buffer.
  te::Status AddBuffer(size_t size, te::Permission permission, PeerBuffer* out) {
    te::MemoryOptions options;
    options.permission = permission;
    options.shm = shm_;
    options.location = location_;
    void* addr = nullptr;
    TE_RETURN_IF_ERROR(engine_->allocateLocalMemory(&addr, size, options));
    PeerBuffer buffer;
    buffer.base = addr;
    buffer.length = size;
    buffer.index = buffers_.size();
    buffer.on_device = te::IsDeviceLocation(location_);
    if (buffer.on_device) {
      std::vector<uint8_t> pattern(size);
      te_test::FillPattern(pattern.data(), size, te_test::BufferSeed(fill_, buffer.index));
      TE_RETURN_IF_ERROR(te::CopyMemory(addr, pattern.data(), size));
    } else {
      te_test::FillPattern(addr, size, te_test::BufferSeed(fill_, buffer.index));
    }
    te::Status s = engine_->registerLocalMemory(addr, size, options);
    if (!s.ok()) {
      engine_->freeLocalMemory(addr);
      return s;
    }
    buffer.registered = true;
    buffers_.push_back(buffer);
    *out = buffer;
    return te::Status::OK();
  }

  // Handles one command line; returns false when the peer should exit.
  bool Handle(const std::string& line) {
    std::vector<std::string> t = Split(line);
    if (t.empty()) return true;
    const std::string& cmd = t[0];
    if (cmd == "PING") {
      Reply("PONG");
    } else if (cmd == "EXIT") {
      Reply("BYE");
      return false;
    } else if (cmd == "CHECKSUM") {
      Checksum(t);
    } else if (cmd == "NOTIFY?") {
      Notifications();
    } else if (cmd == "SEND") {
      Send(t);
    } else if (cmd == "REGISTER") {
      Register(t);
    } else if (cmd == "UNREGISTER") {
      Unregister(t);
    } else if (cmd == "REREGISTER") {
      Reregister(t);
    } else if (cmd == "XFER") {
      Transfer(t);
    } else {
      Reply("ERR unknown command " + cmd);
    }
    return true;
  }

 private:
  PeerBuffer* FindBuffer(uint64_t addr) {
    for (auto& b : buffers_) {
      if (reinterpret_cast<uint64_t>(b.base) == addr) return &b;
    }
    return nullptr;
  }

  // The buffer this peer allocated that holds [addr, addr+len), or null.
  const PeerBuffer* InsideAllocated(uint64_t addr, uint64_t len) const {
    for (const auto& b : buffers_) {
      uint64_t base = reinterpret_cast<uint64_t>(b.base);
      if (addr >= base && len <= b.length && addr - base <= b.length - len) return &b;
    }
    return nullptr;
  }

  void Checksum(const std::vector<std::string>& t) {
    uint64_t addr = 0, len = 0;
    if (t.size() != 3 || !ParseU64(t[1], &addr) || !ParseU64(t[2], &len)) {
      return Reply("ERR usage: CHECKSUM <addr> <len>");
    }
    const PeerBuffer* b = InsideAllocated(addr, len);
    if (!b) return Reply("ERR range outside the peer's buffers");
    const void* data = reinterpret_cast<void*>(addr);
    std::vector<uint8_t> host;
    if (b->on_device) {
      host.resize(len);
      te::Status s = te::CopyMemory(host.data(), data, len);
      if (!s.ok()) return Reply("ERR " + s.ToString());
      data = host.data();
    }
    Reply("CHECKSUM " + te_test::ToHex64(ChecksumOfTransferredMemory(data, len)));
  }

  void Notifications() {
    std::vector<te::Notification> notes;
    te::Status s = engine_->receiveNotification(&notes);
    if (!s.ok()) return Reply("ERR " + s.ToString());
    std::string line = "NOTIFICATIONS " + std::to_string(notes.size());
    for (const auto& n : notes) {
      line += " " + te_test::EncodeToken(n.from) + " " + te_test::EncodeToken(n.message);
    }
    Reply(line);
  }

  te::Status Open(const std::string& name, te::SegmentHandle* handle) {
    auto it = segments_.find(name);
    if (it != segments_.end()) {
      *handle = it->second;
      return te::Status::OK();
    }
    TE_RETURN_IF_ERROR(engine_->openSegment(handle, name));
    segments_[name] = *handle;
    return te::Status::OK();
  }

  void Send(const std::vector<std::string>& t) {
    std::string message;
    if (t.size() != 3 || !te_test::DecodeToken(t[2], &message)) {
      return Reply("ERR usage: SEND <segment> <xmessage>");
    }
    te::SegmentHandle handle = 0;
    te::Status s = Open(t[1], &handle);
    if (s.ok()) s = engine_->sendNotification(handle, message);
    Reply(s.ok() ? "OK" : "ERR " + s.ToString());
  }

  void Register(const std::vector<std::string>& t) {
    uint64_t size = 0;
    if (t.size() < 2 || t.size() > 3 || !ParseU64(t[1], &size) || size == 0) {
      return Reply("ERR usage: REGISTER <size> [rw|ro|local]");
    }
    auto permission = ParsePermission(t.size() == 3 ? t[2] : "rw");
    if (!permission) return Reply("ERR bad permission");
    PeerBuffer b;
    te::Status s = AddBuffer(size, *permission, &b);
    if (!s.ok()) return Reply("ERR " + s.ToString());
    Reply("REGISTERED " + std::to_string(reinterpret_cast<uint64_t>(b.base)) + " " +
          std::to_string(b.length) + " " + std::to_string(b.index));
  }

  void Unregister(const std::vector<std::string>& t) {
    uint64_t addr = 0;
    if (t.size() != 2 || !ParseU64(t[1], &addr)) return Reply("ERR usage: UNREGISTER <addr>");
    PeerBuffer* b = FindBuffer(addr);
    if (b == nullptr) return Reply("ERR no such buffer");
    // The memory stays allocated so that a stray write cannot hit unmapped pages.
    te::Status s = engine_->unregisterLocalMemory(b->base);
    if (s.ok()) b->registered = false;
    Reply(s.ok() ? "OK" : "ERR " + s.ToString());
  }

  void Reregister(const std::vector<std::string>& t) {
    uint64_t addr = 0;
    if (t.size() != 3 || !ParseU64(t[1], &addr)) {
      return Reply("ERR usage: REREGISTER <addr> <rw|ro|local>");
    }
    auto permission = ParsePermission(t[2]);
    if (!permission) return Reply("ERR bad permission");
    PeerBuffer* b = FindBuffer(addr);
    if (b == nullptr) return Reply("ERR no such buffer");
    if (b->registered) {
      te::Status s = engine_->unregisterLocalMemory(b->base);
      if (!s.ok()) return Reply("ERR unregister: " + s.ToString());
      b->registered = false;
    }
    te::MemoryOptions options;
    options.permission = *permission;
    te::Status s = engine_->registerLocalMemory(b->base, b->length, options);
    if (s.ok()) b->registered = true;
    Reply(s.ok() ? "OK" : "ERR register: " + s.ToString());
  }

  void Transfer(const std::vector<std::string>& t) {
    uint64_t local = 0, remote = 0, len = 0;
    if (t.size() != 6 || (t[1] != "READ" && t[1] != "WRITE") || !ParseU64(t[3], &local) ||
        !ParseU64(t[4], &remote) || !ParseU64(t[5], &len)) {
      return Reply("ERR usage: XFER <READ|WRITE> <segment> <local> <remote> <len>");
    }
    te::SegmentHandle handle = 0;
    te::Status s = Open(t[2], &handle);
    if (!s.ok()) return Reply("ERR open: " + s.ToString());
    te::BatchID batch = 0;
    s = engine_->allocateBatch(1, &batch);
    if (!s.ok()) return Reply("ERR allocateBatch: " + s.ToString());
    te::Request r;
    r.opcode = t[1] == "READ" ? te::Request::READ : te::Request::WRITE;
    r.source = reinterpret_cast<void*>(local);
    r.target_id = handle;
    r.target_offset = remote;
    r.length = len;
    s = engine_->submitTransfer(batch, {r});
    if (!s.ok()) {
      engine_->freeBatch(batch);
      return Reply("ERR submit: " + s.ToString());
    }
    te::TransferStatus overall;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (true) {
      s = engine_->getTransferStatus(batch, &overall);
      if (!s.ok() || overall.state != te::TransferState::kPending) break;
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    engine_->freeBatch(batch);
    if (!s.ok()) return Reply("ERR getTransferStatus: " + s.ToString());
    // Fixed spellings, independent of te::TransferStateName.
    const char* state = overall.state == te::TransferState::kCompleted ? "Completed"
                        : overall.state == te::TransferState::kFailed  ? "Failed"
                                                                       : "Pending";
    Reply(std::string("DONE ") + state + " " + std::to_string(overall.transferred_bytes) + " " +
          te_test::EncodeToken(overall.error));
  }

  std::unique_ptr<te::TransferEngine> engine_;
  uint64_t fill_;
  bool shm_;
  std::string location_;
  std::vector<PeerBuffer> buffers_;
  std::map<std::string, te::SegmentHandle> segments_;
};

struct Flags {
  uint64_t buffers = 1;
  uint64_t size = 1 << 20;
  std::vector<te::Permission> permissions = {te::Permission::kRemoteReadWrite};
  uint64_t fill = 1;
  bool shm = false;
  std::string location;
  te::Config config;
};

bool ParseFlags(int argc, char** argv, Flags* flags, std::string* error) {
  flags->config.rpc_host = "127.0.0.1";
  // A machine id of its own, as if on another host: same-host transports stand aside
  // and the test's transfers to this peer go over TCP. --machine_id overrides it.
  flags->config.machine_id = "te-test-peer-" + std::to_string(::getpid());
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      *error = "bad argument " + arg;
      return false;
    }
    std::string key = arg.substr(2, eq - 2), value = arg.substr(eq + 1);
    uint64_t n = 0;
    bool numeric = ParseU64(value, &n);
    if (key == "buffers" && numeric) {
      flags->buffers = n;
    } else if (key == "size" && numeric && n > 0) {
      flags->size = n;
    } else if (key == "fill" && numeric) {
      flags->fill = n;
    } else if (key == "permission") {
      flags->permissions.clear();
      std::istringstream in(value);
      std::string item;
      while (std::getline(in, item, ',')) {
        auto p = ParsePermission(item);
        if (!p) {
          *error = "bad permission " + item;
          return false;
        }
        flags->permissions.push_back(*p);
      }
      if (flags->permissions.empty()) {
        *error = "empty --permission";
        return false;
      }
    } else if (key == "transfer_timeout_ms" && numeric) {
      flags->config.transfer_timeout_ms = static_cast<uint32_t>(n);
    } else if (key == "connect_timeout_ms" && numeric) {
      flags->config.connect_timeout_ms = static_cast<uint32_t>(n);
    } else if (key == "log_level") {
      flags->config.log_level = value;
    } else if (key == "machine_id") {
      flags->config.machine_id = value;
    } else if (key == "rpc_port" && numeric && n <= 65535) {
      flags->config.rpc_port = static_cast<uint16_t>(n);
    } else if (key == "rpc_host") {
      flags->config.rpc_host = value;
    } else if (key == "cluster_secret") {
      flags->config.cluster_secret = value;
    } else if (key == "ucx_tls") {
      flags->config.ucx_tls = value;
    } else if (key == "shm" && numeric && n <= 1) {
      flags->shm = n == 1;
    } else if (key == "location") {
      flags->location = value;
    } else if (key == "transports") {
      flags->config.transports.clear();
      std::istringstream in(value);
      std::string item;
      while (std::getline(in, item, ',')) flags->config.transports.push_back(item);
    } else {
      *error = "bad argument " + arg;
      return false;
    }
  }
  return true;
}

// Reads stdin line by line until EOF, SIGTERM or EXIT.
void Serve(Peer* peer) {
  std::string pending;
  char chunk[4096];
  while (!g_terminate) {
    pollfd pfd{STDIN_FILENO, POLLIN, 0};
    int rc = poll(&pfd, 1, 200);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (rc == 0) continue;
    ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return;
    }
    if (n == 0) return;  // stdin closed: the test is done with us
    pending.append(chunk, static_cast<size_t>(n));
    size_t pos;
    while ((pos = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, pos);
      pending.erase(0, pos + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!peer->Handle(line)) return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = OnSigterm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll() returns EINTR
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  Flags flags;
  std::string error;
  if (!ParseFlags(argc, argv, &flags, &error)) {
    Reply("ERROR " + error);
    return 2;
  }
  auto engine = std::make_unique<te::TransferEngine>(flags.config);
  if (!engine->available()) {
    Reply("ERROR engine unavailable: " + engine->status().ToString());
    return 1;
  }
  Peer peer(std::move(engine), flags.fill, flags.shm, flags.location);
  for (uint64_t i = 0; i < flags.buffers; ++i) {
    te::Permission p = flags.permissions[std::min<size_t>(i, flags.permissions.size() - 1)];
    PeerBuffer b;
    te::Status s = peer.AddBuffer(flags.size, p, &b);
    if (!s.ok()) {
      Reply("ERROR buffer " + std::to_string(i) + ": " + s.ToString());
      return 1;
    }
  }
  std::string ready = "READY " + peer.engine().getSegmentName();
  for (const auto& b : peer.buffers()) {
    ready +=
        " " + std::to_string(reinterpret_cast<uint64_t>(b.base)) + " " + std::to_string(b.length);
  }
  Reply(ready);
  Serve(&peer);
  return 0;
}
