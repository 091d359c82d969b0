// A program outside the project, built against an installed TransferEngine (CMake
// package or pkg-config): it moves bytes through the engine and checks them.
#include <te/transfer_engine.h>

#include <cstdio>
#include <cstring>

namespace {

int Fail(const char* what, const te::Status& s) {
  std::fprintf(stderr, "consumer: %s: %s\n", what, s.ToString().c_str());
  return 1;
}

}  // namespace

int main() {
  te::Config config;
  config.rpc_host = "127.0.0.1";
  te::TransferEngine engine(config);
  if (!engine.available()) return Fail("engine", engine.status());
  constexpr size_t kSize = 1 << 20;
  void *src, *dst;
  te::Status s = engine.allocateLocalMemory(&src, kSize);
  if (s.ok()) s = engine.allocateLocalMemory(&dst, kSize);
  if (s.ok()) s = engine.registerLocalMemory(src, kSize);
  if (s.ok()) s = engine.registerLocalMemory(dst, kSize);
  if (!s.ok()) return Fail("memory", s);
  for (size_t i = 0; i < kSize; ++i) static_cast<unsigned char*>(src)[i] = (i * 7 + 3) & 0xff;

  te::SegmentHandle self;
  te::BatchID batch;
  s = engine.openSegment(&self, engine.getSegmentName());
  if (s.ok()) s = engine.allocateBatch(1, &batch);
  te::Request write{te::Request::WRITE, src, self, reinterpret_cast<uint64_t>(dst), kSize};
  if (s.ok()) s = engine.submitTransfer(batch, {write});
  te::TransferStatus done;
  if (s.ok()) s = engine.waitTransferStatus(batch, &done, 10000);
  if (!s.ok()) return Fail("transfer", s);
  if (done.state != te::TransferState::kCompleted) {
    std::fprintf(stderr, "consumer: transfer ended %s: %s\n", te::TransferStateName(done.state),
                 done.error.c_str());
    return 1;
  }
  engine.freeBatch(batch);
  if (std::memcmp(src, dst, kSize) != 0) {
    std::fprintf(stderr, "consumer: destination differs from source\n");
    return 1;
  }
  te::EngineStatistics stats;
  engine.getStatistics(&stats);
  std::printf("consumer: moved %zu bytes through '%s'\n", kSize, engine.primaryTransport().c_str());
  return 0;
}
