#include "memory/buffer_table.h"

namespace te {
namespace {

uint64_t PriorityOf(uint64_t base) {  // splitmix64: well-spread for page-aligned bases
  uint64_t z = base + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

BufferTable::NodePtr BufferTable::With(const Node& n, NodePtr left, NodePtr right) {
  return std::make_shared<const Node>(Node{n.entry, n.priority, std::move(left), std::move(right)});
}

// (bases < base, bases >= base), copying only the nodes on the search path.
std::pair<BufferTable::NodePtr, BufferTable::NodePtr> BufferTable::Split(const NodePtr& t,
                                                                         uint64_t base) {
  if (!t) return {nullptr, nullptr};
  if (t->entry->info.base < base) {
    auto [low, high] = Split(t->right, base);
    return {With(*t, t->left, std::move(low)), std::move(high)};
  }
  auto [low, high] = Split(t->left, base);
  return {std::move(low), With(*t, std::move(high), t->right)};
}

// Every base in a is below every base in b.
BufferTable::NodePtr BufferTable::Merge(const NodePtr& a, const NodePtr& b) {
  if (!a) return b;
  if (!b) return a;
  if (a->priority > b->priority) return With(*a, a->left, Merge(a->right, b));
  return With(*b, Merge(a, b->left), b->right);
}

BufferTable::NodePtr BufferTable::InsertNode(const NodePtr& t, NodePtr n) {
  if (!t) return n;
  const uint64_t base = n->entry->info.base;
  if (n->priority > t->priority) {
    auto [low, high] = Split(t, base);
    return With(*n, std::move(low), std::move(high));
  }
  if (base < t->entry->info.base) return With(*t, InsertNode(t->left, std::move(n)), t->right);
  return With(*t, t->left, InsertNode(t->right, std::move(n)));
}

BufferTable::NodePtr BufferTable::EraseNode(const NodePtr& t, uint64_t base) {
  if (t->entry->info.base == base) return Merge(t->left, t->right);
  if (base < t->entry->info.base) return With(*t, EraseNode(t->left, base), t->right);
  return With(*t, t->left, EraseNode(t->right, base));
}

const BufferTable::Entry* BufferTable::FindContaining(uint64_t addr) const {
  const Entry* best = nullptr;
  for (const Node* n = root_.get(); n;) {
    if (n->entry->info.base <= addr) {
      best = &n->entry;
      n = n->right.get();
    } else {
      n = n->left.get();
    }
  }
  return best;
}

const BufferTable::Entry* BufferTable::Find(uint64_t base) const {
  const Entry* e = FindContaining(base);
  return e && (*e)->info.base == base ? e : nullptr;
}

bool BufferTable::Overlaps(uint64_t base, uint64_t length) const {
  if (const Entry* below = FindContaining(base)) {
    if ((*below)->info.base + (*below)->info.length > base) return true;
  }
  // The first entry above base starts inside the range?
  const Node* first_above = nullptr;
  for (const Node* n = root_.get(); n;) {
    if (n->entry->info.base > base) {
      first_above = n;
      n = n->left.get();
    } else {
      n = n->right.get();
    }
  }
  return first_above && first_above->entry->info.base < base + length;
}

BufferTable BufferTable::Insert(Entry entry) const {
  const uint64_t priority = PriorityOf(entry->info.base);
  auto node = std::make_shared<const Node>(Node{std::move(entry), priority, nullptr, nullptr});
  return BufferTable(InsertNode(root_, std::move(node)), size_ + 1);
}

BufferTable BufferTable::Erase(uint64_t base) const {
  if (!Find(base)) return *this;
  return BufferTable(EraseNode(root_, base), size_ - 1);
}

}  // namespace te
