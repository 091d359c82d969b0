#include "transport/shm/shm_transport.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "transport/same_host.h"

namespace te {
namespace {

class ShmPeer : public SameHostPeer {
 public:
  ShmPeer(SegmentDescriptor desc, std::unique_ptr<PinTable> pins, CopyPool* pool)
      : SameHostPeer(std::move(desc), std::move(pins), pool), maps_(desc_.buffers.size()) {
    for (auto& m : maps_) m.store(nullptr);
  }
  ~ShmPeer() override {
    for (size_t i = 0; i < maps_.size(); ++i) {
      if (char* p = maps_[i].load()) ::munmap(p, desc_.buffers[i].length);
    }
  }

  bool CanServe(const SegmentBuffer* b) const override { return b && !b->shm_name.empty(); }

 protected:
  Status Copy(Slice* s, const SegmentBuffer& b, size_t index) override {
    char* base = nullptr;
    TE_RETURN_IF_ERROR(Map(b, index, &base));
    char* remote = base + (s->remote - b.base);
    if (s->opcode == Request::READ) {
      std::memcpy(s->local, remote, s->length);
    } else {
      std::memcpy(remote, s->local, s->length);
    }
    return Status::OK();
  }

 private:
  // Maps buffer `index` on first use; later calls read the cached address lock-free.
  Status Map(const SegmentBuffer& b, size_t index, char** out) {
    if ((*out = maps_[index].load(std::memory_order_acquire))) return Status::OK();
    std::lock_guard<std::mutex> lock(map_mu_);
    if ((*out = maps_[index].load(std::memory_order_acquire))) return Status::OK();
    if (b.shm_name.empty()) return Status::NotSupported("buffer is not in shared memory");
    const bool writable = b.permission == Permission::kRemoteReadWrite;
    int fd = ::shm_open(b.shm_name.c_str(), (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
    if (fd < 0) return Status::Unavailable("shm_open " + b.shm_name + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) < b.length) {
      ::close(fd);
      // Mapping past the object's end would raise SIGBUS on access.
      return Status::Unavailable("shared memory " + b.shm_name + " is smaller than announced");
    }
    void* p =
        ::mmap(nullptr, b.length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) return Status::FromErrno("mmap " + b.shm_name, errno);
    *out = static_cast<char*>(p);
    maps_[index].store(*out, std::memory_order_release);
    return Status::OK();
  }

  std::mutex map_mu_;
  std::vector<std::atomic<char*>> maps_;
};

}  // namespace

Status ShmTransport::GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) {
  std::unique_ptr<PinTable> pins;
  TE_RETURN_IF_ERROR(AttachPeer(peer, &pins));
  *out = std::make_shared<ShmPeer>(peer, std::move(pins), pool());
  return Status::OK();
}

}  // namespace te
