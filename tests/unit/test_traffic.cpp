// Traffic mode's pieces that decide what a sink reports: the per-flow
// sequence tracker (loss, duplicates, reordering) and the latency histogram;
// the line-rate arithmetic a generator paces by; and the generator's frames,
// byte by byte, read back from a real DPDK port (net_ring).
#include <gtest/gtest.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_ring.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "stack/traffic/stamp.hpp"
#include "stack/traffic/traffic.hpp"
#include "stack/tx_buffer.hpp"
#include "tests/lib/eal_env.hpp"

namespace ngstack::stack::traffic {
namespace {

SequenceTracker feed(const std::vector<uint32_t>& seqs) {
  SequenceTracker t;
  for (uint32_t s : seqs) t.record(s);
  return t;
}

TEST(SequenceTracker, InOrderHasNoLossDuplicatesOrReordering) {
  std::vector<uint32_t> seqs(5000);
  for (uint32_t i = 0; i < seqs.size(); ++i) seqs[i] = i;
  const auto t = feed(seqs);
  EXPECT_EQ(t.received(), 5000u);
  EXPECT_EQ(t.missing(), 0u);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.reordered(), 0u);
}

TEST(SequenceTracker, CountsEachKindExactly) {
  // 0..99 with 10 and 50..52 lost, 20 and 21 duplicated (21 twice), and two
  // adjacent swaps (30<->31, 70<->71).
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i < 100; ++i) {
    if (i == 10 || (i >= 50 && i <= 52)) continue;
    if (i == 30 || i == 70) continue;
    seqs.push_back(i);
    if (i == 20 || i == 21) seqs.push_back(i);
    if (i == 21) seqs.push_back(i);
    if (i == 31 || i == 71) seqs.push_back(i - 1);
  }
  const auto t = feed(seqs);
  EXPECT_EQ(t.missing(), 4u);
  EXPECT_EQ(t.duplicates(), 3u);
  EXPECT_EQ(t.reordered(), 2u);
  EXPECT_EQ(t.received(), 96u);
}

TEST(SequenceTracker, LateArrivalBeyondTheWindowIsCountedApart) {
  // 0..2000 without 5 and 1990; then 1990 (inside the window: a late
  // arrival), 5 (2000 - 5 > kWindow: it cannot be checked, so it neither
  // fills the gap nor counts as received) and 1990 again (a duplicate).
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i <= 2000; ++i)
    if (i != 5 && i != 1990) seqs.push_back(i);
  seqs.push_back(1990);
  seqs.push_back(5);
  seqs.push_back(1990);
  const auto t = feed(seqs);
  EXPECT_EQ(t.missing(), 1u);
  EXPECT_EQ(t.reordered(), 1u);
  EXPECT_EQ(t.duplicates(), 1u);
  EXPECT_EQ(t.beyond_window(), 1u);
  EXPECT_EQ(t.received(), 2000u);
}

TEST(SequenceTracker, OldDuplicatesDoNotHideLoss) {
  // 0..2999 with 2500..2509 lost, then a replay of 0..99 (duplicates far
  // behind the window). The 10 lost stay lost; the replay is counted apart.
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i < 3000; ++i)
    if (i < 2500 || i >= 2510) seqs.push_back(i);
  for (uint32_t i = 0; i < 100; ++i) seqs.push_back(i);
  const auto t = feed(seqs);
  EXPECT_EQ(t.missing(), 10u);
  EXPECT_EQ(t.beyond_window(), 100u);
  EXPECT_EQ(t.received(), 2990u);
  EXPECT_EQ(t.reordered(), 0u);
}

TEST(SequenceTracker, StaleWindowSlotsDoNotMakeFalseDuplicates) {
  // A jump over more than the window's slots, then a late packet from just
  // before the jump's end: it reuses a slot marked two windows ago.
  std::vector<uint32_t> seqs;
  for (uint32_t i = 0; i < 3000; ++i) seqs.push_back(i);
  const uint32_t late = 3000 + 2 * SequenceTracker::kWindow + 10;
  seqs.push_back(late + 1);  // skips 3000..late
  seqs.push_back(late);
  const auto t = feed(seqs);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.reordered(), 1u);
  EXPECT_EQ(t.missing(), late - 3000u);
}

TEST(SequenceTracker, WrapsAround) {
  SequenceTracker t;
  // Jump near the end of the 32-bit space, then run past it.
  t.record(0xfffffff0u);
  for (uint32_t s = 0xfffffff1u; s != 0x10u; ++s) t.record(s);
  EXPECT_EQ(t.missing(), 0xfffffff0u);
  EXPECT_EQ(t.duplicates(), 0u);
  EXPECT_EQ(t.reordered(), 0u);
  EXPECT_EQ(t.next_expected(), 0x10u);
}

TEST(LatencyHistogram, QuantilesWithinBucketPrecision) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v * 10);  // 10 ns .. 1 ms, uniform
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min(), 10u);
  EXPECT_EQ(h.max(), 1000000u);
  auto near = [](uint64_t got, double want) { return std::abs(static_cast<double>(got) - want) <= want * 0.035; };
  EXPECT_TRUE(near(h.quantile(0.5), 500000)) << h.quantile(0.5);
  EXPECT_TRUE(near(h.quantile(0.99), 990000)) << h.quantile(0.99);
  EXPECT_TRUE(near(h.quantile(0.999), 999000)) << h.quantile(0.999);
  EXPECT_EQ(h.quantile(1.0), 1000000u);
}

TEST(LatencyHistogram, BucketsCoverEveryValueInOrder) {
  uint64_t prev_upper = 0;
  for (unsigned i = 1; i < LatencyHistogram::kBuckets; ++i) {
    const uint64_t up = LatencyHistogram::upper(i);
    ASSERT_GT(up, prev_upper) << i;
    ASSERT_EQ(LatencyHistogram::index(up), i) << i;
    ASSERT_EQ(LatencyHistogram::index(prev_upper + 1), i) << i;
    prev_upper = up;
  }
  EXPECT_EQ(LatencyHistogram::index(UINT64_MAX), LatencyHistogram::kBuckets - 1);
}

TEST(LineRate, TenGigabitAtSixtyFourBytesIs14_88Mpps) {
  EXPECT_NEAR(line_rate_pps(10000, 100, {64}, {1}), 14880952.38, 0.01);
  EXPECT_NEAR(line_rate_pps(10000, 50, {1518}, {1}), 812743.82 / 2, 0.01);
  // IMIX 7:4:1 averages 4342 / 12 = 361.83 bytes.
  EXPECT_NEAR(line_rate_pps(10000, 100, {64, 594, 1518}, {7, 4, 1}), 1e10 / ((4342.0 / 12 + 20) * 8), 0.01);
}

// --- the generator's frames --------------------------------------------------

// One generator on a net_ring port whose tx ring the test reads: every frame
// is checked field by field against what the config says flow f, packet k of
// that flow, must carry (flow f takes element f % count of every range).
class GeneratorFrames : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pool_ = test::pool("gen_pool", 4095, RTE_MBUF_DEFAULT_DATAROOM);
    rx_ = rte_ring_create("genrx", 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    tx_ = rte_ring_create("gentx", 4096, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    const int id = rte_eth_from_rings("gen0", &rx_, 1, &tx_, 1, 0);
    ASSERT_GE(id, 0);
    port_id_ = static_cast<uint16_t>(id);
    rte_eth_conf conf{};
    ASSERT_EQ(rte_eth_dev_configure(id, 1, 1, &conf), 0);
    ASSERT_EQ(rte_eth_rx_queue_setup(id, 0, 64, 0, nullptr, pool_), 0);
    ASSERT_EQ(rte_eth_tx_queue_setup(id, 0, 64, 0, nullptr), 0);
    ASSERT_EQ(rte_eth_dev_start(id), 0);
  }

  // Runs `g` for `bursts` poll rounds and returns what reached the port.
  std::vector<rte_mbuf*> run(const conf::GeneratorConfig& g, unsigned bursts) {
    conf::Config cfg;
    cfg.ports.push_back(conf::PortConfig{});
    cfg.ports[0].name = "gen";
    cfg.traffic.generators.push_back(g);
    PortInfo info;
    info.port_id = port_id_;
    info.mac = rte_ether_addr{{0x02, 0, 0, 0, 0, 0x11}};
    auto t = Traffic::create(cfg, {info}, {0}, pool_, 1, rte_get_tsc_hz());
    EXPECT_TRUE(t.ok()) << (t.ok() ? "" : t.error());
    DropCounters drops;
    EventCounters events;
    TxBuffers tx({port_id_}, 0, 32, drops);
    (*t)->bind({WorkerIo{&tx, &drops, &events, nullptr}});
    for (unsigned i = 0; i < bursts; ++i) (*t)->poll(0, rte_rdtsc());
    (*t)->worker_offline(0);
    std::vector<rte_mbuf*> out(4096);
    out.resize(rte_ring_dequeue_burst(tx_, reinterpret_cast<void**>(out.data()), 4096, nullptr));
    EXPECT_EQ(events.get(Event::traffic_generated), out.size());
    return out;
  }

  static inline rte_mempool* pool_ = nullptr;
  static inline rte_ring* rx_ = nullptr;
  static inline rte_ring* tx_ = nullptr;
  static inline uint16_t port_id_ = 0;
};

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// The one's complement sum of n bytes read as big-endian 16-bit words.
uint32_t sum_words(const uint8_t* p, unsigned n) {
  uint32_t sum = 0;
  for (unsigned i = 0; i + 1 < n; i += 2) sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1] << 8);
  return sum;
}

conf::GeneratorConfig generator_config(conf::TrafficProtocol proto, std::vector<uint16_t> sizes,
                                       std::vector<uint16_t> weights) {
  conf::GeneratorConfig g;
  g.protocol = proto;
  g.sizes = std::move(sizes);
  g.weights = std::move(weights);
  g.dst_mac = {0x02, 0, 0, 0, 0, 0x22};
  g.src = {0xc6120001u, 7};   // 198.18.0.1-7
  g.dst = {0xc6130001u, 3};   // 198.19.0.1-3
  g.sport = {1024, 5};
  g.dport = {9, 2};
  g.flows = 11;  // no range divides it: every range wraps at its own place
  g.ttl = 17;
  g.burst = 32;
  return g;
}

void check_frames(const std::vector<rte_mbuf*>& frames, const conf::GeneratorConfig& g,
                  const std::vector<uint16_t>& size_cycle) {
  const bool tcp = g.protocol == conf::TrafficProtocol::tcp_syn;
  std::vector<uint32_t> seq(g.flows, 0);
  for (std::size_t k = 0; k < frames.size(); ++k) {
    SCOPED_TRACE("frame " + std::to_string(k));
    const rte_mbuf* m = frames[k];
    const uint32_t f = static_cast<uint32_t>(k % g.flows);
    const uint16_t len = static_cast<uint16_t>(size_cycle[k % size_cycle.size()] - 4);
    ASSERT_EQ(m->pkt_len, len);
    ASSERT_EQ(m->data_len, len);
    ASSERT_EQ(m->nb_segs, 1);
    const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
    const auto* eth = reinterpret_cast<const rte_ether_hdr*>(d);
    EXPECT_EQ(0, std::memcmp(eth->dst_addr.addr_bytes, g.dst_mac.data(), 6));
    const uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 0x11};
    EXPECT_EQ(0, std::memcmp(eth->src_addr.addr_bytes, src_mac, 6));
    EXPECT_EQ(eth->ether_type, rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4));
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(d + 14);
    EXPECT_EQ(ip->version_ihl, 0x45);
    EXPECT_EQ(ip->type_of_service, 0);
    EXPECT_EQ(rte_be_to_cpu_16(ip->total_length), len - 14);
    EXPECT_EQ(rte_be_to_cpu_16(ip->packet_id), static_cast<uint16_t>(seq[f]));
    EXPECT_EQ(ip->fragment_offset, 0);
    EXPECT_EQ(ip->time_to_live, 17);
    EXPECT_EQ(ip->next_proto_id, tcp ? IPPROTO_TCP : IPPROTO_UDP);
    EXPECT_EQ(rte_be_to_cpu_32(ip->src_addr), g.src.first + f % g.src.count);
    EXPECT_EQ(rte_be_to_cpu_32(ip->dst_addr), g.dst.first + f % g.dst.count);
    // The header sums to 0xffff with its checksum in it.
    EXPECT_EQ(fold(sum_words(d + 14, 20)), 0xffff);
    const uint8_t* l4 = d + 34;
    const uint16_t l4_len = tcp ? 20 : 8;
    uint16_t sport = 0, dport = 0;
    std::memcpy(&sport, l4, 2);
    std::memcpy(&dport, l4 + 2, 2);
    EXPECT_EQ(rte_be_to_cpu_16(sport), g.sport.first + f % g.sport.count);
    EXPECT_EQ(rte_be_to_cpu_16(dport), g.dport.first + f % g.dport.count);
    if (tcp) {
      const auto* th = reinterpret_cast<const rte_tcp_hdr*>(l4);
      EXPECT_EQ(rte_be_to_cpu_32(th->sent_seq), seq[f]);
      EXPECT_EQ(th->recv_ack, 0u);
      EXPECT_EQ(th->data_off, 0x50);
      EXPECT_EQ(th->tcp_flags, RTE_TCP_SYN_FLAG);
      EXPECT_EQ(rte_be_to_cpu_16(th->rx_win), 65535);
      EXPECT_EQ(th->tcp_urp, 0);
      // Pseudo-header (addresses, protocol, length) and segment sum to 0xffff.
      const uint16_t seg = static_cast<uint16_t>(len - 34);
      EXPECT_EQ(fold(sum_words(d + 26, 8) + IPPROTO_TCP + seg + sum_words(l4, seg)), 0xffff);
    } else {
      const auto* uh = reinterpret_cast<const rte_udp_hdr*>(l4);
      EXPECT_EQ(rte_be_to_cpu_16(uh->dgram_len), len - 34);
      EXPECT_EQ(uh->dgram_cksum, 0);
    }
    // The stamp, then zeros to the end of the frame.
    const uint8_t* payload = l4 + l4_len;
    const uint16_t payload_len = static_cast<uint16_t>(len - 34 - l4_len);
    uint16_t zero_from = 0;
    if (payload_len >= sizeof(Stamp)) {
      Stamp st;
      std::memcpy(&st, payload, sizeof st);
      EXPECT_EQ(st.magic, kStampMagic);
      EXPECT_EQ(st.flow, f);
      EXPECT_EQ(st.seq, seq[f]);
      EXPECT_NE(st.tsc, 0u);
      zero_from = sizeof(Stamp);
    }
    for (uint16_t i = zero_from; i < payload_len; ++i)
      if (payload[i] != 0) {
        ADD_FAILURE() << "payload byte " << i << " is " << int(payload[i]);
        break;
      }
    ++seq[f];
  }
}

TEST_F(GeneratorFrames, UdpFramesOfOneSizeCarryTheirFlowsFieldsAndAValidHeaderChecksum) {
  // Dirty the pool first: a generator must write every byte of its frames.
  std::vector<rte_mbuf*> dirty(2048);
  ASSERT_EQ(rte_pktmbuf_alloc_bulk(pool_, dirty.data(), 2048), 0);
  for (auto* m : dirty) std::memset(rte_pktmbuf_mtod(m, uint8_t*), 0xa5, rte_pktmbuf_tailroom(m));
  rte_pktmbuf_free_bulk(dirty.data(), 2048);
  const auto g = generator_config(conf::TrafficProtocol::udp, {64}, {1});
  auto frames = run(g, 40);
  ASSERT_EQ(frames.size(), 40u * 32);
  check_frames(frames, g, {64});
  rte_pktmbuf_free_bulk(frames.data(), static_cast<unsigned>(frames.size()));
  EXPECT_EQ(rte_mempool_avail_count(pool_), 4095u);
}

TEST_F(GeneratorFrames, MixedSizesAndTcpSynFramesAreWholeToo) {
  std::vector<rte_mbuf*> dirty(2048);
  ASSERT_EQ(rte_pktmbuf_alloc_bulk(pool_, dirty.data(), 2048), 0);
  for (auto* m : dirty) std::memset(rte_pktmbuf_mtod(m, uint8_t*), 0x5a, rte_pktmbuf_tailroom(m));
  rte_pktmbuf_free_bulk(dirty.data(), 2048);
  // The smooth weighted cycle of {64, 594, 1518} by {7, 4, 1} (size_cycle).
  const std::vector<uint16_t> cycle{64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 594, 64};
  for (auto proto : {conf::TrafficProtocol::udp, conf::TrafficProtocol::tcp_syn}) {
    SCOPED_TRACE(proto == conf::TrafficProtocol::udp ? "udp" : "tcp_syn");
    const auto g = generator_config(proto, {64, 594, 1518}, {7, 4, 1});
    auto frames = run(g, 30);
    ASSERT_EQ(frames.size(), 30u * 32);
    check_frames(frames, g, cycle);
    rte_pktmbuf_free_bulk(frames.data(), static_cast<unsigned>(frames.size()));
  }
  EXPECT_EQ(rte_mempool_avail_count(pool_), 4095u);
}

}  // namespace
}  // namespace ngstack::stack::traffic
