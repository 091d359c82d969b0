#include "transport/cma/cma_transport.h"

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "memory/memory.h"
#include "transport/same_host.h"

namespace te {
namespace {

// Moves len bytes, looping over partial transfers (the kernel may stop at a page
// boundary it cannot access).
Status CmaCopy(pid_t pid, bool read, char* local, uint64_t remote, uint64_t len) {
  while (len > 0) {
    iovec l{local, len};
    iovec r{reinterpret_cast<void*>(remote), len};
    ssize_t n =
        read ? ::process_vm_readv(pid, &l, 1, &r, 1, 0) : ::process_vm_writev(pid, &l, 1, &r, 1, 0);
    if (n <= 0) {
      int err = n == 0 ? EFAULT : errno;
      if (err == EINTR) continue;
      if (err == ESRCH)
        return Status::Unavailable("peer process " + std::to_string(pid) + " is gone");
      return Status::IoError(std::string(read ? "process_vm_readv: " : "process_vm_writev: ") +
                             std::strerror(err));
    }
    local += n;
    remote += static_cast<uint64_t>(n);
    len -= static_cast<uint64_t>(n);
  }
  return Status::OK();
}

class CmaPeer : public SameHostPeer {
 public:
  CmaPeer(SegmentDescriptor desc, std::unique_ptr<PinTable> pins, CopyPool* pool)
      : SameHostPeer(std::move(desc), std::move(pins), pool) {}

  bool CanServe(const SegmentBuffer* b) const override { return b != nullptr; }

 protected:
  Status Copy(Slice* s, const SegmentBuffer&, size_t) override {
    return CmaCopy(static_cast<pid_t>(desc_.pid), s->opcode == Request::READ, s->local, s->remote,
                   s->length);
  }

  // A system call costs about as much as copying 16 KiB here, so each run of slices
  // going the same way moves in one call; ranges that continue one another merge
  // into one iovec on their side, which the kernel walks once.
  void CopyAll(const CheckedSlice* slices, size_t n, Status* results) override {
    for (size_t begin = 0, end; begin < n; begin = end) {
      const Request::OpCode op = slices[begin].slice->opcode;
      for (end = begin + 1; end < n && slices[end].slice->opcode == op;) ++end;
      CopyRun(slices + begin, end - begin, results + begin);
    }
  }

 private:
  static void Append(std::vector<iovec>* iovs, void* base, size_t len) {
    if (!iovs->empty()) {
      iovec& last = iovs->back();
      if (static_cast<char*>(last.iov_base) + last.iov_len == base) {
        last.iov_len += len;
        return;
      }
    }
    iovs->push_back({base, len});
  }

  void CopyRun(const CheckedSlice* slices, size_t n, Status* results) {
    const bool read = slices[0].slice->opcode == Request::READ;
    thread_local std::vector<iovec> local, remote;
    local.clear();
    remote.clear();
    for (size_t i = 0; i < n; ++i) {
      const Slice* s = slices[i].slice;
      Append(&local, s->local, s->length);
      Append(&remote, reinterpret_cast<void*>(s->remote), s->length);
    }
    const pid_t pid = static_cast<pid_t>(desc_.pid);
    const auto lc = static_cast<unsigned long>(local.size());
    const auto rc = static_cast<unsigned long>(remote.size());
    ssize_t moved = read ? ::process_vm_readv(pid, local.data(), lc, remote.data(), rc, 0)
                         : ::process_vm_writev(pid, local.data(), lc, remote.data(), rc, 0);
    // Slices wholly moved are done; from the first one that is not, each goes alone,
    // which finishes a partial transfer or reports its own error.
    uint64_t done = moved > 0 ? static_cast<uint64_t>(moved) : 0;
    for (size_t i = 0; i < n; ++i) {
      const uint64_t length = slices[i].slice->length;
      if (done >= length) {
        results[i] = Status::OK();
        done -= length;
      } else {
        done = 0;
        results[i] = Copy(slices[i].slice, *slices[i].buffer, slices[i].index);
      }
    }
  }
};

}  // namespace

Status CmaTransport::GetPeer(const SegmentDescriptor& peer, std::shared_ptr<TransportPeer>* out) {
  std::unique_ptr<PinTable> pins;
  TE_RETURN_IF_ERROR(AttachPeer(peer, &pins));
  // The probe reads host memory: process_vm_readv cannot reach device buffers.
  auto probed = std::find_if(peer.buffers.begin(), peer.buffers.end(),
                             [](const SegmentBuffer& b) { return !IsDeviceLocation(b.location); });
  if (probed == peer.buffers.end())
    return Status::Unavailable("segment '" + peer.name + "' has no host buffers");
  // Probe: read one byte of the peer's first host buffer. EPERM here means the kernel
  // forbids cross-memory attach to that process (ptrace rules).
  char byte;
  Status s = CmaCopy(static_cast<pid_t>(peer.pid), true, &byte, probed->base, 1);
  if (!s.ok())
    return Status::Unavailable("cross-memory attach to '" + peer.name +
                               "' not allowed: " + s.message());
  *out = std::make_shared<CmaPeer>(peer, std::move(pins), pool());
  return Status::OK();
}

}  // namespace te
