// What the same-host transports (shm, CMA, CUDA IPC) share. All copy straight between
// this process and a peer process on the same machine, so all must check each slice against the
// peer's descriptor (range, permission) and pin the peer's buffer through its shared
// pin table while copying, exactly as the peer's own serving threads do. Subclasses
// supply only the copy itself (SameHostPeer) and the peer's construction
// (SameHostTransport).
#pragma once

#include <memory>

#include "memory/pin_table.h"
#include "transport/copy_pool.h"
#include "transport/transport.h"

namespace te {

class SameHostPeer : public TransportPeer, public std::enable_shared_from_this<SameHostPeer> {
 public:
  // Slices of at least this many bytes go to the copy pool; smaller ones are copied
  // inline, which is cheaper than a thread hand-off.
  static constexpr uint64_t kInlineCopyLimit = 256 << 10;

  void Submit(Slice* const* slices, size_t count) override;

  // Attaches the peer's pin table and checks that it describes the same buffers as
  // the descriptor (so a same machine-id in another namespace cannot fool us).
  static Status AttachPins(const SegmentDescriptor& desc, std::unique_ptr<PinTable>* out);

 protected:
  // Slices of at least inline_copy_limit bytes go to the pool.
  SameHostPeer(SegmentDescriptor desc, std::unique_ptr<PinTable> pins, CopyPool* pool,
               uint64_t inline_copy_limit = kInlineCopyLimit)
      : desc_(std::move(desc)),
        pins_(std::move(pins)),
        pool_(pool),
        inline_copy_limit_(inline_copy_limit) {}
  // A slice checked against the descriptor (range, permission).
  struct CheckedSlice {
    Slice* slice;
    const SegmentBuffer* buffer;
    size_t index;  // of buffer in desc_.buffers
  };
  // Copies one slice.
  virtual Status Copy(Slice* slice, const SegmentBuffer& buffer, size_t index) = 0;
  // Copies n slices whose remote buffers are pinned, results[i] for slices[i]. One
  // Copy each, unless the transport moves several at once for less than several
  // times the cost.
  virtual void CopyAll(const CheckedSlice* slices, size_t n, Status* results);

  const SegmentDescriptor desc_;

 private:
  // Inline slices copied together, at most: bounds what a submission keeps pinned.
  static constexpr size_t kMaxGroup = 64;

  void Run(Slice* slice);
  // The error when the slice may not be copied.
  Status Check(Slice* slice, CheckedSlice* out) const;
  // Pins the checked slices' buffers, copies them, unpins and completes them.
  void Finish(const CheckedSlice* slices, size_t n);

  std::unique_ptr<PinTable> pins_;
  CopyPool* pool_;
  const uint64_t inline_copy_limit_;
};

// True when the process still exists (same pid namespace).
bool ProcessAlive(uint32_t pid);

// What shm, cma and cuda_ipc share as transports: they serve nothing themselves (peers come
// through the pin table), reach only segments on this machine that advertise them,
// and own a small copy pool for large slices.
class SameHostTransport : public Transport {
 public:
  Status Start(const TransportContext& context, SegmentDescriptor* local) override;
  void Stop() override { pool_.reset(); }
  bool CanReach(const SegmentDescriptor& peer) const override;

 protected:
  CopyPool* pool() { return pool_.get(); }
  // What every same-host peer needs first: the segment is on this machine and its pin
  // table attaches and matches its descriptor.
  Status AttachPeer(const SegmentDescriptor& peer, std::unique_ptr<PinTable>* pins) const;

 private:
  std::string machine_id_;
  std::unique_ptr<CopyPool> pool_;
};

}  // namespace te
