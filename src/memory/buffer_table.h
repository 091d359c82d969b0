// BufferTable: the registered buffers sorted by base, as an immutable persistent treap.
// Insert and Erase return a new table that shares all but O(log n) nodes with the old
// one, so registering costs O(log n) however many buffers exist, while readers keep
// using the old table without a lock until they reload it (BufferRegistry::Reader).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "metadata/segment_descriptor.h"

namespace te {

class PinTable;

struct RegisteredBuffer {
  SegmentBuffer info;  // with its pin slot
  PinTable* pins = nullptr;
};

class BufferTable {
 public:
  using Entry = std::shared_ptr<RegisteredBuffer>;

  BufferTable() = default;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  // The entry with the greatest base <= addr, or nullptr.
  const Entry* FindContaining(uint64_t addr) const;
  // The entry whose base is exactly base, or nullptr.
  const Entry* Find(uint64_t base) const;
  // Whether [base, base+length) overlaps an entry.
  bool Overlaps(uint64_t base, uint64_t length) const;
  // A table with entry added (its base must not be present) or the one at base removed.
  BufferTable Insert(Entry entry) const;
  BufferTable Erase(uint64_t base) const;
  // Calls f(const Entry&) in order of base.
  template <typename F>
  void ForEach(F&& f) const {
    Visit(root_.get(), f);
  }

 private:
  struct Node;
  using NodePtr = std::shared_ptr<const Node>;
  struct Node {
    Entry entry;
    uint64_t priority;  // max-heap order; a hash of the base, so no random state
    NodePtr left, right;
  };
  BufferTable(NodePtr root, size_t size) : root_(std::move(root)), size_(size) {}

  static NodePtr With(const Node& n, NodePtr left, NodePtr right);
  static std::pair<NodePtr, NodePtr> Split(const NodePtr& t, uint64_t base);
  static NodePtr Merge(const NodePtr& a, const NodePtr& b);
  static NodePtr InsertNode(const NodePtr& t, NodePtr n);
  static NodePtr EraseNode(const NodePtr& t, uint64_t base);
  template <typename F>
  static void Visit(const Node* n, F& f) {
    while (n) {  // the right spine iteratively: depth stays O(log n) expected
      Visit(n->left.get(), f);
      f(n->entry);
      n = n->right.get();
    }
  }

  NodePtr root_;
  size_t size_ = 0;
};

}  // namespace te
