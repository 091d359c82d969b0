#include "metadata/http_client.h"

#include <gtest/gtest.h>

namespace te {
namespace {

TEST(MetadataHttpServerStringTest, AcceptsHostPortWithOptionalSchemeAndPath) {
  HttpServer s;
  ASSERT_TRUE(ParseHttpServer("127.0.0.1:8080", "/metadata", &s).ok());
  EXPECT_EQ(s.origin, "http://127.0.0.1:8080");
  EXPECT_EQ(s.path, "/metadata");
  // The URL form existing deployments use, path included.
  ASSERT_TRUE(ParseHttpServer("http://meta.local:8080/metadata", "", &s).ok());
  EXPECT_EQ(s.origin, "http://meta.local:8080");
  EXPECT_EQ(s.path, "/metadata");
  ASSERT_TRUE(ParseHttpServer("http://10.0.0.1:80/api/v1/kv/", "/metadata", &s).ok());
  EXPECT_EQ(s.path, "/api/v1/kv");
  EXPECT_EQ(s.Display(), "10.0.0.1:80/api/v1/kv");
  ASSERT_TRUE(ParseHttpServer("[::1]:2379", "", &s).ok());
  EXPECT_EQ(s.origin, "http://[::1]:2379");
  EXPECT_EQ(s.path, "");
}

TEST(MetadataHttpServerStringTest, RejectsMalformedServers) {
  HttpServer s;
  for (const char* bad : {"", "host", "host:0", "http://", "http://host", "https://host:1",
                          "ftp://host:1", "::1:80", "http:///metadata"}) {
    EXPECT_EQ(ParseHttpServer(bad, "/metadata", &s).code(), Status::Code::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace te
