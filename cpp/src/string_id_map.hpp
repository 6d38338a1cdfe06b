// An open-addressing hash map from string_view to uint32, for vocabularies.
// Internal to the core.
//
// Why not std::unordered_map<std::string, ...>: C++17 has no heterogeneous
// lookup, so every lookup by string_view would build a std::string, and node
// allocation per term costs memory and cache misses. Keys are views into
// storage the owner keeps alive (an mmapped file, a std::deque of strings).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace secondopinion {

inline std::uint64_t hash_bytes(std::string_view s) {
  // A multiply-xorshift hash over 8-byte words: terms are short, so this is a
  // few multiplies per lookup; quality is ample for a table at load <= 0.5.
  constexpr std::uint64_t kMul = 0x9E3779B97F4A7C15ull;
  auto mix = [](std::uint64_t x) {
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return x;
  };
  const char* p = s.data();
  std::size_t n = s.size();
  std::uint64_t h = kMul ^ (n * 0xFF51AFD7ED558CCDull);
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = mix((h ^ v) * kMul);
    p += 8;
    n -= 8;
  }
  std::uint64_t tail = 0;
  std::memcpy(&tail, p, n);
  return mix((h ^ tail) * kMul);
}

class StringIdMap {
 public:
  static constexpr std::uint32_t kMissing = 0xFFFFFFFFu;

  explicit StringIdMap(std::size_t expected = 0) { rehash(capacity_for(expected)); }

  std::size_t size() const { return size_; }

  std::uint32_t find(std::string_view key) const { return find(key, hash_bytes(key)); }

  std::uint32_t find(std::string_view key, std::uint64_t hash) const {
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.value == kMissing) return kMissing;
      if (s.hash == hash && s.key == key) return s.value;
    }
  }

  // Inserts key -> value unless key is present; returns the value now stored.
  // key must outlive the map.
  std::uint32_t insert(std::string_view key, std::uint32_t value) {
    return insert(key, hash_bytes(key), value);
  }

  std::uint32_t insert(std::string_view key, std::uint64_t hash, std::uint32_t value) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.value == kMissing) {
        s = Slot{hash, key, value};
        ++size_;
        return value;
      }
      if (s.hash == hash && s.key == key) return s.value;
    }
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::string_view key;
    std::uint32_t value = kMissing;
  };

  static std::size_t capacity_for(std::size_t n) {
    std::size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    return cap;
  }

  void rehash(std::size_t capacity) {
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(capacity, Slot{});
    size_ = 0;
    const std::size_t mask = capacity - 1;
    for (const Slot& s : old) {
      if (s.value == kMissing) continue;
      std::size_t i = s.hash & mask;
      while (slots_[i].value != kMissing) i = (i + 1) & mask;
      slots_[i] = s;
      ++size_;
    }
  }

  std::vector<Slot> slots_;
  std::size_t size_ = 0;
};

}  // namespace secondopinion
