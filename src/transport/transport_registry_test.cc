#include "transport/transport_registry.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "te/config.h"
#include "transport/ucx/ucx_context.h"

namespace te {
namespace {

// Every built row makes a transport that answers to the row's name: the engine's
// statistics and descriptors use name(), the configuration the row.
TEST(TransportRegistryTest, BuiltRowsCreateTransportsOfTheirName) {
  std::set<std::string> names;
  for (const TransportEntry& e : TransportTable()) {
    EXPECT_TRUE(names.insert(e.name).second) << "duplicate row " << e.name;
    EXPECT_EQ(e.built, e.create != nullptr) << e.name;
    if (!e.built) continue;
    std::unique_ptr<Transport> t;
    ASSERT_TRUE(CreateTransport(e.name, &t).ok()) << e.name;
    EXPECT_STREQ(t->name(), e.name);
  }
  for (const char* always : {"local", "shm", "cma", "tcp"}) {
    ASSERT_NE(FindTransport(always), nullptr) << always;
    EXPECT_TRUE(FindTransport(always)->built) << always;
  }
  EXPECT_EQ(FindTransport("tcp")->reach, TransportReach::kAnyHost);
  EXPECT_EQ(FindTransport("shm")->reach, TransportReach::kSameHost);
  EXPECT_EQ(FindTransport("local")->reach, TransportReach::kSameProcess);
}

TEST(TransportRegistryTest, DefaultTransportsAreTheBuiltDefaultRowsInOrder) {
  std::vector<std::string> expected;
  for (const TransportEntry& e : TransportTable()) {
    if (e.built && e.enabled_by_default) expected.push_back(e.name);
  }
  EXPECT_EQ(Config::DefaultTransports(), expected);
  EXPECT_TRUE(Config().Validate().ok());
}

// A known transport this build lacks (ucx without UCX) and an unknown name are
// both NotSupported, in one line that names them; the engine refuses them at Init.
TEST(TransportRegistryTest, TransportsNotBuiltAreNotSupportedByName) {
  ASSERT_NE(FindTransport("ucx"), nullptr);
  for (const std::string name : {"ucx", "carrier-pigeon"}) {
    if (FindTransport(name) && FindTransport(name)->built) continue;
    std::unique_ptr<Transport> t;
    Status s = CreateTransport(name, &t);
    EXPECT_EQ(s.code(), Status::Code::kNotSupported) << name;
    EXPECT_NE(s.message().find("'" + name + "'"), std::string::npos) << s.ToString();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.ToString();
    Config config;
    config.transports = {"tcp", name};
    Status v = config.Validate();
    EXPECT_EQ(v.code(), Status::Code::kNotSupported) << name;
    EXPECT_NE(v.message().find("'" + name + "'"), std::string::npos) << v.ToString();
  }
  EXPECT_NE(CheckTransportBuilt("carrier-pigeon").message().find("unknown"), std::string::npos);
}

// ucx follows the build, reaches any host, comes before tcp (so it carries traffic to
// other hosts when enabled) and is on by default only where UCX sees an RDMA device.
TEST(TransportRegistryTest, UcxRowFollowsTheBuildAndRdma) {
  const TransportEntry* ucx = FindTransport("ucx");
  ASSERT_NE(ucx, nullptr);
  EXPECT_EQ(ucx->built, UcxBuilt());
  EXPECT_EQ(ucx->reach, TransportReach::kAnyHost);
  EXPECT_LT(ucx, FindTransport("tcp")) << "ucx must be preferred over tcp";
  EXPECT_GT(ucx, FindTransport("cma")) << "same-host peers keep shm and cma";
  UcxInfo info;
  const bool rdma = QueryUcx(UcxOptions{}, &info).ok() && info.rdma;
  EXPECT_EQ(ucx->enabled_by_default, rdma);
  if (!UcxBuilt()) {
    EXPECT_EQ(CheckTransportBuilt("ucx").code(), Status::Code::kNotSupported);
    EXPECT_NE(CheckTransportBuilt("ucx").message().find("not built"), std::string::npos);
  }
}

// Old descriptors' per-buffer keys map to transports of the table.
TEST(TransportRegistryTest, LegacyBufferKeysNameTransportsOfTheTable) {
  bool device_handle = false;
  for (const LegacyBufferKey& k : LegacyBufferKeys()) {
    EXPECT_NE(FindTransport(k.transport), nullptr) << k.transport;
    device_handle |= std::string(k.key) == "device_handle";
  }
  EXPECT_TRUE(device_handle);
}

}  // namespace
}  // namespace te
