// The forwarder and the tx buffers over real DPDK ports: net_ring ports whose
// tx rings the test reads back, with a real mempool that must be full again at
// the end.
#include <gtest/gtest.h>
#include <filesystem>
#include <rte_eal.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "stack/tx_buffer.hpp"
#include "tests/lib/eal_env.hpp"
#include "stack/xconnect.hpp"

using namespace ngstack;
using namespace ngstack::stack;

namespace {

class XconnectTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pool_ = test::pool("xc_pool", 1023, RTE_MBUF_DEFAULT_DATAROOM);
    for (int p = 0; p < 2; ++p) {
      const std::string n = std::string("xc").append(std::to_string(p));
      rx_[p] = rte_ring_create((n + "rx").c_str(), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
      // A small tx ring so that the tx_full path can be exercised.
      tx_[p] = rte_ring_create((n + "tx").c_str(), 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
      const int id = rte_eth_from_rings(n.c_str(), &rx_[p], 1, &tx_[p], 1, 0);
      ASSERT_GE(id, 0);
      port_ids_.push_back(static_cast<uint16_t>(id));
      rte_eth_conf conf{};
      ASSERT_EQ(rte_eth_dev_configure(id, 1, 1, &conf), 0);
      ASSERT_EQ(rte_eth_rx_queue_setup(id, 0, 64, 0, nullptr, pool_), 0);
      ASSERT_EQ(rte_eth_tx_queue_setup(id, 0, 64, 0, nullptr), 0);
      ASSERT_EQ(rte_eth_dev_start(id), 0);
    }
  }

  // Frames with a sequence number at byte 14.
  std::vector<rte_mbuf*> frames(uint32_t n, uint16_t len = 60) {
    std::vector<rte_mbuf*> v(n);
    EXPECT_EQ(rte_pktmbuf_alloc_bulk(pool_, v.data(), n), 0);
    for (uint32_t i = 0; i < n; ++i) {
      char* d = rte_pktmbuf_append(v[i], len);
      memset(d, 0, len);
      if (len >= 18) memcpy(d + 14, &i, 4);
    }
    return v;
  }

  std::vector<rte_mbuf*> drain_tx(int p) {
    std::vector<rte_mbuf*> out(1024);
    out.resize(rte_ring_dequeue_burst(tx_[p], reinterpret_cast<void**>(out.data()), 1024, nullptr));
    return out;
  }

  static void free_all(std::vector<rte_mbuf*>& v) {
    for (auto* m : v) rte_pktmbuf_free(m);
    v.clear();
  }

  static inline rte_mempool* pool_ = nullptr;
  static inline rte_ring* rx_[2]{};
  static inline rte_ring* tx_[2]{};
  static inline std::vector<uint16_t> port_ids_;
};

TEST_F(XconnectTest, ForwardsInOrderAndRewritesAddresses) {
  DropCounters drops;
  TxBuffers tx(port_ids_, 0, 32, drops);
  XconnectPath path{true, 1, true, {}, {}};
  path.dst = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x22}};
  path.src = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x11}};
  Xconnect fwd({path, XconnectPath{}});

  auto in = frames(50);
  fwd.input(0, in.data(), 32, tx, drops);
  fwd.input(0, in.data() + 32, 18, tx, drops);
  tx.flush_all();
  auto out = drain_tx(1);
  ASSERT_EQ(out.size(), 50u);
  for (uint32_t i = 0; i < out.size(); ++i) {
    auto* eth = rte_pktmbuf_mtod(out[i], rte_ether_hdr*);
    EXPECT_TRUE(rte_is_same_ether_addr(&eth->dst_addr, &path.dst));
    EXPECT_TRUE(rte_is_same_ether_addr(&eth->src_addr, &path.src));
    uint32_t seq;
    memcpy(&seq, rte_pktmbuf_mtod_offset(out[i], char*, 14), 4);
    EXPECT_EQ(seq, i) << "frames leave in arrival order";
  }
  EXPECT_EQ(tx.stats(1).packets.get(), 50u);
  EXPECT_EQ(tx.stats(1).bytes.get(), 50u * 60);
  EXPECT_EQ(drops.total(), 0u);
  free_all(out);
  EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size);
}

TEST_F(XconnectTest, UnrewrittenFramesPassUntouched) {
  DropCounters drops;
  TxBuffers tx(port_ids_, 0, 32, drops);
  Xconnect fwd({XconnectPath{true, 1, false, {}, {}}, XconnectPath{}});
  auto in = frames(5);
  rte_pktmbuf_mtod(in[0], uint8_t*)[0] = 0xaa;
  fwd.input(0, in.data(), 5, tx, drops);
  tx.flush_all();
  auto out = drain_tx(1);
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(rte_pktmbuf_mtod(out[0], uint8_t*)[0], 0xaa);
  free_all(out);
}

TEST_F(XconnectTest, NoPathAndRuntsAreFreedAndCounted) {
  DropCounters drops;
  TxBuffers tx(port_ids_, 0, 32, drops);
  Xconnect fwd({XconnectPath{true, 1, true, {}, {}}, XconnectPath{}});
  auto in = frames(4);
  fwd.input(1, in.data(), 4, tx, drops);  // port 1 is the input of no path
  EXPECT_EQ(drops.get(DropReason::no_path), 4u);

  auto runts = frames(3, 10);
  auto good = frames(2);
  std::vector<rte_mbuf*> mixed{good[0], runts[0], runts[1], good[1], runts[2]};
  fwd.input(0, mixed.data(), 5, tx, drops);
  tx.flush_all();
  EXPECT_EQ(drops.get(DropReason::runt), 3u);
  auto out = drain_tx(1);
  EXPECT_EQ(out.size(), 2u);
  free_all(out);
  EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size);
}

TEST_F(XconnectTest, FullTxQueueDropsAreCountedNotLeaked) {
  DropCounters drops;
  TxBuffers tx(port_ids_, 0, 256, drops);
  Xconnect fwd({XconnectPath{true, 1, false, {}, {}}, XconnectPath{}});
  auto in = frames(100);  // the tx ring holds 63
  fwd.input(0, in.data(), 100, tx, drops);
  tx.flush_all();
  auto out = drain_tx(1);
  EXPECT_EQ(out.size(), 63u);
  EXPECT_EQ(drops.get(DropReason::tx_full), 37u);
  EXPECT_EQ(tx.stats(1).packets.get(), 63u);
  EXPECT_EQ(tx.stats(1).bytes.get(), 63u * 60);
  free_all(out);
  EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size);
}

}  // namespace

// Bytes are summed as packets are buffered (push and enqueue alike) and only
// what the queue took is counted: the refused tail's bytes come off again.
TEST_F(XconnectTest, TxBytesCountWhatLeftWithMixedSizes) {
  DropCounters drops;
  TxBuffers tx(port_ids_, 0, 256, drops);
  auto small = frames(40, 60);
  auto large = frames(40, 1000);
  for (uint32_t i = 0; i < 40; ++i) tx.push(1, small[i]);
  tx.enqueue(1, large.data(), 40);  // only 23 of these fit the 63-slot ring
  tx.flush_all();
  auto out = drain_tx(1);
  EXPECT_EQ(out.size(), 63u);
  EXPECT_EQ(drops.get(DropReason::tx_full), 17u);
  EXPECT_EQ(tx.stats(1).packets.get(), 63u);
  EXPECT_EQ(tx.stats(1).bytes.get(), 40u * 60 + 23u * 1000);
  free_all(out);
  // The next flush starts from zero bytes buffered.
  auto more = frames(3, 100);
  tx.enqueue(1, more.data(), 3);
  tx.flush(1);
  EXPECT_EQ(tx.stats(1).bytes.get(), 40u * 60 + 23u * 1000 + 300);
  out = drain_tx(1);
  EXPECT_EQ(out.size(), 3u);
  free_all(out);
  EXPECT_EQ(rte_mempool_avail_count(pool_), pool_->size);
}
