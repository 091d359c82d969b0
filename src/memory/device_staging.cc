#include "memory/device_staging.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <vector>

#include "memory/device_memory.h"

namespace te {
namespace {

// Two pinned chunks and a copy stream on one device: what one staged transfer holds.
struct Stager {
  int device = kHostMemory;
  std::unique_ptr<CopyStream> stream;
  char* chunks[2] = {nullptr, nullptr};
  ~Stager() {
    for (char* c : chunks) {
      if (c) FreePinned(c);
    }
  }
};

// Stagers are costly to make (pinning is a system call per page range) and cheap to
// keep, so they are reused; at most one per thread staging at once ever exists.
class StagerPool {
 public:
  Status Acquire(int device, std::unique_ptr<Stager>* out) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = std::find_if(free_.begin(), free_.end(),
                             [device](const auto& s) { return s->device == device; });
      if (it != free_.end()) {
        *out = std::move(*it);
        free_.erase(it);
        return Status::OK();
      }
    }
    auto stager = std::make_unique<Stager>();
    stager->device = device;
    TE_RETURN_IF_ERROR(CopyStream::Create(device, &stager->stream));
    for (char*& chunk : stager->chunks) {
      void* p = nullptr;
      TE_RETURN_IF_ERROR(AllocatePinned(kStagingChunkSize, &p));
      chunk = static_cast<char*>(p);
    }
    *out = std::move(stager);
    return Status::OK();
  }

  void Release(std::unique_ptr<Stager> stager) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(stager));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Stager>> free_;  // guarded by mu_
};

StagerPool& Pool() {
  // Never destroyed: freeing pinned memory after the CUDA runtime unloaded at exit fails.
  static StagerPool* pool = new StagerPool;
  return *pool;
}

// Holds a stager for one transfer; gives it back on every path out.
class StagerLease {
 public:
  ~StagerLease() {
    if (stager_) Pool().Release(std::move(stager_));
  }
  Status Acquire(int device) { return Pool().Acquire(device, &stager_); }
  Stager* operator->() const { return stager_.get(); }

 private:
  std::unique_ptr<Stager> stager_;
};

}  // namespace

Status StageFromDevice(int device, const char* src, uint64_t len,
                       const std::function<Status(const char* data, size_t n)>& sink) {
  StagerLease stager;
  TE_RETURN_IF_ERROR(stager.Acquire(device));
  auto chunk_at = [len](uint64_t offset) {
    return static_cast<size_t>(std::min<uint64_t>(kStagingChunkSize, len - offset));
  };
  TE_RETURN_IF_ERROR(stager->stream->CopyAsync(stager->chunks[0], src, chunk_at(0)));
  TE_RETURN_IF_ERROR(stager->stream->Wait());
  for (uint64_t offset = 0, i = 0; offset < len; ++i) {
    const size_t n = chunk_at(offset);
    const uint64_t next = offset + n;
    Status copy;
    if (next < len)
      copy = stager->stream->CopyAsync(stager->chunks[(i + 1) % 2], src + next, chunk_at(next));
    Status sent = sink(stager->chunks[i % 2], n);
    // Always waited: the chunks go back to the pool with no copy still writing them.
    Status done = stager->stream->Wait();
    TE_RETURN_IF_ERROR(sent);
    TE_RETURN_IF_ERROR(copy);
    TE_RETURN_IF_ERROR(done);
    offset = next;
  }
  return Status::OK();
}

Status StageToDevice(int device, char* dst, uint64_t len,
                     const std::function<Status(char* data, size_t n)>& source) {
  StagerLease stager;
  TE_RETURN_IF_ERROR(stager.Acquire(device));
  for (uint64_t offset = 0, i = 0; offset < len; ++i) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kStagingChunkSize, len - offset));
    char* chunk = stager->chunks[i % 2];
    // This chunk's previous copy (two chunks back) was waited for last round.
    Status received = source(chunk, n);
    Status done = stager->stream->Wait();  // the previous chunk's copy
    TE_RETURN_IF_ERROR(received);
    TE_RETURN_IF_ERROR(done);
    TE_RETURN_IF_ERROR(stager->stream->CopyAsync(dst + offset, chunk, n));
    offset += n;
  }
  return stager->stream->Wait();
}

}  // namespace te
