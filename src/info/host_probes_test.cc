#include "info/host_probes.h"

#include <gtest/gtest.h>
#include <sys/statvfs.h>

namespace te {
namespace {

TEST(HostProbesTest, ClusterSecretStates) {
  Config c;
  EXPECT_FALSE(ProbeClusterSecret(c).usable);
  EXPECT_NE(ProbeClusterSecret(c).detail.find("not set"), std::string::npos);
  c.cluster_secret = "short";
  EXPECT_FALSE(ProbeClusterSecret(c).usable);
  EXPECT_NE(ProbeClusterSecret(c).detail.find("too short"), std::string::npos);
  c.cluster_secret = std::string(Config::kMinClusterSecretLength, 'x');
  EXPECT_TRUE(ProbeClusterSecret(c).usable);
  // The secret itself is never shown.
  EXPECT_EQ(ProbeClusterSecret(c).detail.find(c.cluster_secret), std::string::npos);
}

TEST(HostProbesTest, ConfiguredValuesWin) {
  Config c;
  c.rpc_host = "10.1.2.3";
  c.machine_id = "probe-test-machine";
  EXPECT_EQ(ProbeAdvertisedAddress(c).detail, "10.1.2.3 (rpc_host)");
  EXPECT_EQ(ProbeMachineId(c).detail, "probe-test-machine");
}

TEST(HostProbesTest, ShmMatchesTheFilesystem) {
  struct statvfs fs;
  const Probe shm = ProbeShm();
  if (::statvfs("/dev/shm", &fs) != 0) {
    EXPECT_FALSE(shm.usable);
  } else {
    EXPECT_EQ(shm.usable, fs.f_bavail > 0);
    EXPECT_NE(shm.detail.find(std::to_string((fs.f_blocks * fs.f_frsize) >> 20) + " MiB"),
              std::string::npos)
        << shm.detail;
  }
}

TEST(HostProbesTest, EveryProbeIsNamedAndExplained) {
  const std::vector<Probe> probes = ProbeHost(Config{});
  ASSERT_EQ(probes.size(), 8u);
  for (const Probe& p : probes) {
    EXPECT_FALSE(p.name.empty());
    EXPECT_FALSE(p.detail.empty()) << p.name;
  }
}

}  // namespace
}  // namespace te
