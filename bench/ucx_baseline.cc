// ucx_baseline: raw UCP doing the ucx transport's job, nothing else. A child process
// maps a region of --batch blocks of --size bytes (ucp_mem_map) and progresses its
// worker; the parent maps a local region laid out the same way and, in its own
// thread, posts one ucp_put_nbx (write) or ucp_get_nbx (read) per block, then a
// ucp_ep_flush_nbx after the PUTs, and progresses until the batch is done, for
// --duration seconds. It prints the throughput in GB/s (10^9 bytes).
//
// Why beside ucx_perftest: perftest moves one message-sized buffer again and again
// (cache-resident), while the engine's batch covers --batch distinct blocks; this is
// the library's figure for the engine's working set. Transports come from UCX_TLS
// (and UCX_NET_DEVICES), as for the engine. The worker address and rkey go over a
// socketpair: no network is involved but what UCX itself uses.
#include <gflags/gflags.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/socket.h"

DEFINE_uint64(size, 65536, "Bytes per block");
DEFINE_int32(batch, 16, "Blocks per batch");
DEFINE_int32(duration, 5, "Seconds measured (after 1 s of warm-up)");
DEFINE_string(direction, "write", "write (ucp_put_nbx + flush) | read (ucp_get_nbx)");

namespace {

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "error: %s\n", what.c_str());
  std::exit(1);
}

void Check(ucs_status_t status, const char* what) {
  if (status != UCS_OK) Die(std::string(what) + ": " + ucs_status_string(status));
}

struct Ucp {
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
};

Ucp InitUcp() {
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_RMA;
  ucp_config_t* config = nullptr;
  Check(ucp_config_read(nullptr, nullptr, &config), "ucp_config_read");
  Ucp ucp;
  Check(ucp_init(&params, config, &ucp.context), "ucp_init");
  ucp_config_release(config);
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  wp.thread_mode = UCS_THREAD_MODE_SINGLE;
  Check(ucp_worker_create(ucp.context, &wp, &ucp.worker), "ucp_worker_create");
  return ucp;
}

// Maps `bytes` of fresh anonymous memory with UCP, filled with `fill`.
ucp_mem_h MapRegion(const Ucp& ucp, size_t bytes, int fill, char** out) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) Die("cannot map " + std::to_string(bytes) + " bytes");
  std::memset(p, fill, bytes);
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  mp.address = p;
  mp.length = bytes;
  ucp_mem_h memh = nullptr;
  Check(ucp_mem_map(ucp.context, &mp, &memh), "ucp_mem_map");
  *out = static_cast<char*>(p);
  return memh;
}

void SendOrDie(int fd, const void* data, size_t len) {
  te::Status s = te::SendAll(fd, data, len);
  if (!s.ok()) Die("socketpair: " + s.ToString());
}

void RecvOrDie(int fd, void* data, size_t len) {
  te::Status s = te::RecvAll(fd, data, len);
  if (!s.ok()) Die("socketpair: the target went away (" + s.ToString() + ")");
}

void SendBlob(int fd, const void* data, uint64_t len) {
  SendOrDie(fd, &len, sizeof(len));
  SendOrDie(fd, data, len);
}

std::vector<char> RecvBlob(int fd) {
  uint64_t len = 0;
  RecvOrDie(fd, &len, sizeof(len));
  if (len > (1u << 20)) Die("socketpair: implausible blob");
  std::vector<char> blob(len);
  RecvOrDie(fd, blob.data(), len);
  return blob;
}

// The child: publishes its worker address, region and rkey, then progresses (as
// ucx_perftest's server does) until the parent closes the socket.
[[noreturn]] void RunTarget(int fd, size_t bytes) {
  Ucp ucp = InitUcp();
  char* region = nullptr;
  ucp_mem_h memh = MapRegion(ucp, bytes, 1, &region);
  ucp_address_t* address = nullptr;
  size_t address_len = 0;
  Check(ucp_worker_get_address(ucp.worker, &address, &address_len), "ucp_worker_get_address");
  void* rkey = nullptr;
  size_t rkey_len = 0;
  Check(ucp_rkey_pack(ucp.context, memh, &rkey, &rkey_len), "ucp_rkey_pack");
  SendBlob(fd, address, address_len);
  SendBlob(fd, rkey, rkey_len);
  const uint64_t base = reinterpret_cast<uintptr_t>(region);
  SendOrDie(fd, &base, sizeof(base));
  for (;;) {
    for (int i = 0; i < 1024; ++i) ucp_worker_progress(ucp.worker);
    char byte;
    ssize_t n = ::recv(fd, &byte, 1, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) _exit(0);
  }
}

struct Remote {
  ucp_ep_h ep = nullptr;
  ucp_rkey_h rkey = nullptr;
  uint64_t base = 0;
};

Remote Connect(const Ucp& ucp, int fd) {
  std::vector<char> address = RecvBlob(fd);
  std::vector<char> packed = RecvBlob(fd);
  Remote remote;
  RecvOrDie(fd, &remote.base, sizeof(remote.base));
  // Error handling as the engine asks for it: PEER (a dead peer fails, never hangs)
  // where the transports can, else NONE (UCX 1.13's shared memory cannot).
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  ep.address = reinterpret_cast<const ucp_address_t*>(address.data());
  ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  if (ucp_ep_create(ucp.worker, &ep, &remote.ep) != UCS_OK) {
    ep.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    Check(ucp_ep_create(ucp.worker, &ep, &remote.ep), "ucp_ep_create");
  }
  Check(ucp_ep_rkey_unpack(remote.ep, packed.data(), &remote.rkey), "ucp_ep_rkey_unpack");
  return remote;
}

// Progresses until every request is done; frees them.
void WaitAll(const Ucp& ucp, std::vector<void*>* requests) {
  for (void* r : *requests) {
    if (r == nullptr) continue;
    if (UCS_PTR_IS_ERR(r)) Check(UCS_PTR_STATUS(r), "post");
    ucs_status_t status;
    while ((status = ucp_request_check_status(r)) == UCS_INPROGRESS)
      ucp_worker_progress(ucp.worker);
    Check(status, "request");
    ucp_request_free(r);
  }
  requests->clear();
}

// One batch: a request per block, then (for PUTs) the flush that says they landed.
void RunBatch(const Ucp& ucp, const Remote& remote, char* local, bool write,
              std::vector<void*>* requests) {
  ucp_request_param_t param{};
  for (int b = 0; b < FLAGS_batch; ++b) {
    const size_t off = static_cast<size_t>(b) * FLAGS_size;
    void* r = write ? ucp_put_nbx(remote.ep, local + off, FLAGS_size, remote.base + off,
                                  remote.rkey, &param)
                    : ucp_get_nbx(remote.ep, local + off, FLAGS_size, remote.base + off,
                                  remote.rkey, &param);
    requests->push_back(r);
  }
  if (write) requests->push_back(ucp_ep_flush_nbx(remote.ep, &param));
  WaitAll(ucp, requests);
}

}  // namespace

int main(int argc, char** argv) {
  gflags::SetUsageMessage("raw UCP PUT/GET of the engine's batch pattern (see the file's head)");
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  const bool write = FLAGS_direction == "write";
  if (!write && FLAGS_direction != "read") Die("--direction must be read or write");
  if (FLAGS_size == 0 || FLAGS_batch <= 0 || FLAGS_duration <= 0) {
    Die("--size, --batch and --duration must be positive");
  }
  const size_t bytes = FLAGS_size * static_cast<size_t>(FLAGS_batch);
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) Die("socketpair");
  pid_t child = fork();
  if (child < 0) Die("fork");
  if (child == 0) {
    close(fds[0]);
    RunTarget(fds[1], bytes);
  }
  close(fds[1]);
  Ucp ucp = InitUcp();
  char* local = nullptr;
  MapRegion(ucp, bytes, 2, &local);
  Remote remote = Connect(ucp, fds[0]);
  std::vector<void*> requests;
  using Clock = std::chrono::steady_clock;
  const auto warm_end = Clock::now() + std::chrono::seconds(1);
  while (Clock::now() < warm_end) RunBatch(ucp, remote, local, write, &requests);
  const auto start = Clock::now();
  const auto end = start + std::chrono::seconds(FLAGS_duration);
  uint64_t batches = 0;
  for (; Clock::now() < end; ++batches) RunBatch(ucp, remote, local, write, &requests);
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  close(fds[0]);  // the child exits; UCX's own state goes with the processes
  waitpid(child, nullptr, 0);
  std::printf("ucp %s: duration %.2fs, batch count %llu, throughput %.2f GB/s\n",
              FLAGS_direction.c_str(), secs, static_cast<unsigned long long>(batches),
              static_cast<double>(batches) * static_cast<double>(bytes) / secs / 1e9);
  return 0;
}
