#include "info/host_probes.h"

#include <gtest/gtest.h>
#include <sys/statvfs.h>

#include "transport/transport_registry.h"
#include "transport/ucx/ucx_context.h"

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
  ASSERT_EQ(probes.size(), 9u);
  for (const Probe& p : probes) {
    EXPECT_FALSE(p.name.empty());
    EXPECT_FALSE(p.detail.empty()) << p.name;
  }
}

// Every row of the transport table is reported, built or not; a built one takes its
// usability from the probe of its feature, an unbuilt one says it is not built.
TEST(HostProbesTest, ReportsEveryTransportOfTheTable) {
  const std::vector<Probe> probes = {{"cma", false, "ptrace says no"}, {"ucx", true, "UCX 1.x"}};
  const std::vector<TransportReport> rows = ReportTransports(probes);
  ASSERT_EQ(rows.size(), TransportTable().size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const TransportEntry& e = TransportTable()[i];
    EXPECT_EQ(rows[i].name, e.name);
    EXPECT_EQ(rows[i].built, e.built) << e.name;
    if (!e.built) {
      EXPECT_FALSE(rows[i].usable) << e.name;
      EXPECT_EQ(rows[i].detail, "not built into this build") << e.name;
    } else if (rows[i].name == "cma") {
      EXPECT_FALSE(rows[i].usable);
      EXPECT_EQ(rows[i].detail, "ptrace says no");
    } else if (rows[i].name == "ucx") {
      EXPECT_TRUE(rows[i].usable);
    } else if (rows[i].name == "tcp") {
      EXPECT_TRUE(rows[i].usable);
    }
  }
}

// The UCX probe follows the build: without UCX it says so; with it, it names UCX's
// version (UCX over tcp and shared memory exists on any Linux host).
TEST(HostProbesTest, UcxProbeFollowsTheBuild) {
  const Probe ucx = ProbeUcx(Config{});
  if (!UcxBuilt()) {
    EXPECT_FALSE(ucx.usable);
    EXPECT_NE(ucx.detail.find("no UCX"), std::string::npos) << ucx.detail;
  } else {
    EXPECT_TRUE(ucx.usable) << ucx.detail;
    EXPECT_NE(ucx.detail.find("UCX 1."), std::string::npos) << ucx.detail;
    EXPECT_NE(ucx.detail.find("tcp/"), std::string::npos) << ucx.detail;
  }
}

}  // namespace
}  // namespace te
