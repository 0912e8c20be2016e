// The signed keys of vocab-parallel greedy sampling (greedy_key.h's signed
// form, distributed_keys.h's per-row steps) against the torch rule written
// directly (check.h): the signed form keeps the order of every key, the empty
// shard's key is below every element's, and the signed max over the shards of
// a row cut anywhere, combined in any order, names the row's argmax.
#include <stdint.h>

#include <algorithm>
#include <vector>

#include "check.h"
#include "distributed_keys.h"
#include "greedy_key.h"

using safe_greedy::from_signed_key;
using safe_greedy::Key;
using safe_greedy::kEmptySignedKey;
using safe_greedy::to_signed_key;

namespace {

void test_signed_form_keeps_the_order() {
  std::vector<Key> keys = {0, 1, 0x7FFFFFFFFFFFFFFFull, 0x8000000000000000ull,
                           0x8000000000000001ull, 0xFFFFFFFFFFFFFFFEull, 0xFFFFFFFFFFFFFFFFull};
  test::Rng rng(22);
  for (int i = 0; i < 2000; ++i) keys.push_back(rng.next());
  for (uint32_t bits : test::special_fp32_bits()) {
    for (uint32_t index : {0u, 1u, 151935u, 0x7FFFFFFEu}) {
      keys.push_back(safe_greedy::make_key(test::float_of(bits), index));
    }
  }
  for (Key a : keys) {
    CHECK(from_signed_key(to_signed_key(a)) == a, "key 0x%016llX", (unsigned long long)a);
    for (size_t j = 0; j < keys.size(); j += 7) {
      const Key b = keys[j];
      CHECK((a < b) == (to_signed_key(a) < to_signed_key(b)), "keys 0x%016llX, 0x%016llX",
            (unsigned long long)a, (unsigned long long)b);
    }
  }
  CHECK(kEmptySignedKey == INT64_MIN);
  CHECK(to_signed_key(safe_greedy::kEmptyKey) == kEmptySignedKey);
}

void test_empty_key_is_below_every_element() {
  const float minus_inf = test::float_of(0xFF800000u);
  for (int64_t index : {int64_t{0}, int64_t{0x7FFFFFFE}}) {
    // The lowest key an element can have: -inf at the last index.
    const int64_t lowest = safe_greedy::shard_column_key(&minus_inf, 1, 0, index);
    CHECK(lowest > kEmptySignedKey, "index %lld", (long long)index);
    CHECK(safe_greedy::signed_key_token(lowest) == index, "index %lld", (long long)index);
  }
  CHECK(safe_greedy::signed_key_token(kEmptySignedKey) == -1);
}

// A row cut at random points, each slice reduced to its best column's signed
// key (found here by the reference rule, as greedy_sample would), the keys
// combined in a random order: the token must be the reference argmax.
void test_cut_rows() {
  test::Rng rng(2022);
  const std::vector<uint32_t> special = test::special_fp32_bits();
  for (int trial = 0; trial < 20000; ++trial) {
    const uint32_t vocab = 1 + rng.next() % 64;
    // A small pool of values per row makes ties and repeated NaNs common.
    std::vector<float> pool(1 + rng.next() % 4);
    for (float& v : pool) {
      v = test::float_of(rng.next() % 2 ? special[rng.next() % special.size()] : rng.bits32());
    }
    std::vector<float> row(vocab);
    for (float& v : row) v = pool[rng.next() % pool.size()];
    uint32_t expected = 0;
    for (uint32_t i = 1; i < vocab; ++i) {
      if (test::later_wins(row[expected], row[i])) expected = i;
    }

    std::vector<uint32_t> cuts = {0, vocab};
    for (uint64_t c = rng.next() % 6; c > 0; --c) cuts.push_back(rng.next() % (vocab + 1));
    std::sort(cuts.begin(), cuts.end());
    std::vector<int64_t> keys;
    for (size_t s = 0; s + 1 < cuts.size(); ++s) {
      const uint32_t lo = cuts[s], hi = cuts[s + 1];
      if (lo == hi) {
        keys.push_back(kEmptySignedKey);  // an empty shard
        continue;
      }
      uint32_t best = lo;
      for (uint32_t i = lo + 1; i < hi; ++i) {
        if (test::later_wins(row[best], row[i])) best = i;
      }
      keys.push_back(safe_greedy::shard_column_key(row.data() + lo, 1, best - lo, lo));
    }
    for (size_t i = keys.size(); i > 1; --i) std::swap(keys[i - 1], keys[rng.next() % i]);
    int64_t reduced = kEmptySignedKey;
    for (int64_t k : keys) reduced = std::max(reduced, k);
    CHECK(safe_greedy::signed_key_token(reduced) == expected, "trial %d: vocab %u, got %lld, want %u",
          trial, vocab, (long long)safe_greedy::signed_key_token(reduced), expected);
  }
}

}  // namespace

int main() {
  test_signed_form_keeps_the_order();
  test_empty_key_is_below_every_element();
  test_cut_rows();
  return test::finish("test_distributed_keys");
}
