// Past the handshake: a real engine (one without a cluster secret, one with) serves
// its RPC port and its TCP data port; each input opens a connection to one of them
// (first byte: bit 0 picks the engine with the secret, bit 1 the data port), completes
// a valid HELLO (proving the secret where there is one) and then sends the rest of
// the input as frames: GET_SEGMENT, NOTIFY, READ, WRITE, junk. The addr of every
// frame header that decodes is taken relative to the engine's registered memory, so
// requests land in, around and across its buffers; payloads follow as given.
//
// The check after every input, once the server has closed the connection (so it has
// handled every frame): memory around and between the registered buffers, and the
// read-only buffer, are exactly as they were. Only the read-write buffer may change.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/socket.h"
#include "metadata/segment_descriptor.h"
#include "rpc/handshake.h"
#include "rpc/rpc_client.h"
#include "rpc/wire.h"
#include "te/transfer_engine.h"

namespace {

constexpr const char* kSecret = "fuzz-cluster-secret-0123456789";
constexpr size_t kPart = 16 * 1024;
// guard | read-write buffer | guard | read-only buffer | guard
constexpr size_t kRwOffset = kPart, kRoOffset = 3 * kPart, kBlock = 5 * kPart;

uint8_t Expected(size_t offset) { return static_cast<uint8_t>(offset * 131 + 7); }

struct Served {
  std::unique_ptr<te::TransferEngine> engine;
  uint8_t* block = nullptr;
  uint16_t rpc_port = 0;
  uint16_t data_port = 0;
  std::string secret;
};

// An engine with the block's two buffers registered; aborts when it cannot start.
Served* Serve(const std::string& secret) {
  auto* s = new Served;
  s->secret = secret;
  te::Config config;
  config.rpc_host = "127.0.0.1";
  config.transports = {"tcp"};
  config.log_level = "error";
  config.cluster_secret = secret;
  s->engine = std::make_unique<te::TransferEngine>(config);
  if (!s->engine->available()) std::abort();
  s->block = static_cast<uint8_t*>(std::aligned_alloc(4096, kBlock));
  for (size_t i = 0; i < kBlock; ++i) s->block[i] = Expected(i);
  te::MemoryOptions rw, ro;
  ro.permission = te::Permission::kRemoteRead;
  if (!s->engine->registerLocalMemory(s->block + kRwOffset, kPart, rw).ok() ||
      !s->engine->registerLocalMemory(s->block + kRoOffset, kPart, ro).ok()) {
    std::abort();
  }
  s->rpc_port = s->engine->getRpcPort();
  // The data port, from the engine's own descriptor as a peer gets it.
  std::string reply;
  te::SegmentDescriptor descriptor;
  if (!te::RpcCall({"127.0.0.1", s->rpc_port, 3000}, {"fuzzer", secret},
                   te::wire::Opcode::kGetSegment, "", &reply)
           .ok() ||
      !te::SegmentDescriptor::FromJson(reply, &descriptor).ok() ||
      !descriptor.transports.count("tcp")) {
    std::abort();
  }
  const std::string& endpoint = descriptor.transports["tcp"];
  s->data_port = static_cast<uint16_t>(std::stoul(endpoint.substr(endpoint.rfind(':') + 1)));
  return s;
}

// The input's frames with each decodable header's addr moved to the block.
std::string Frames(const uint8_t* data, size_t size, uint64_t base) {
  std::string out;
  while (size >= te::wire::kHeaderSize) {
    te::wire::FrameHeader h;
    if (!te::wire::DecodeHeader(data, &h).ok()) break;
    h.addr += base;
    uint8_t header[te::wire::kHeaderSize];
    te::wire::EncodeHeader(h, header);
    out.append(reinterpret_cast<char*>(header), sizeof(header));
    data += te::wire::kHeaderSize;
    size -= te::wire::kHeaderSize;
    const size_t payload = h.payload_len < size ? static_cast<size_t>(h.payload_len) : size;
    out.append(reinterpret_cast<const char*>(data), payload);
    data += payload;
    size -= payload;
  }
  out.append(reinterpret_cast<const char*>(data), size);
  return out;
}

// Every byte outside the read-write buffer is what it was.
void CheckUntouched(const Served& s) {
  for (size_t i = 0; i < kBlock; ++i) {
    if (i >= kRwOffset && i < kRwOffset + kPart) continue;
    if (s.block[i] != Expected(i)) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Served* const open = Serve("");
  static Served* const secret = Serve(kSecret);
  if (size < 1) return 0;
  Served& s = (data[0] & 1) ? *secret : *open;
  const bool data_port = data[0] & 2;
  const std::string frames = Frames(data + 1, size - 1, reinterpret_cast<uint64_t>(s.block));

  te::UniqueFd fd;
  if (!te::Connect("127.0.0.1", data_port ? s.data_port : s.rpc_port, 2000, &fd).ok()) return 0;
  te::SetIoTimeout(fd.get(), 10000);  // generous: a loaded machine must not abort the run
  const char* channel = data_port ? te::wire::kChannelTcpData : te::wire::kChannelRpc;
  // A valid handshake must succeed: past it is what this target is for.
  if (!te::wire::ClientHello(fd.get(), channel, {"fuzzer", s.secret}).ok()) std::abort();
  te::SetIoTimeout(fd.get(), 2000);  // bounds the drain should the server not close
  // Answers (READ data, errors) are drained as they come, so the server never
  // blocks on a full socket while this thread is still sending.
  std::thread drain([&] {
    char sink[65536];
    while (::recv(fd.get(), sink, sizeof(sink), 0) > 0) {
    }
  });
  te::SendAll(fd.get(), frames.data(), frames.size());
  ::shutdown(fd.get(), SHUT_WR);
  drain.join();  // the server closed: it has handled (or refused) every frame
  CheckUntouched(s);
  std::vector<te::Notification> notifications;  // NOTIFYs must not pile up over a run
  s.engine->receiveNotification(&notifications);
  return 0;
}
