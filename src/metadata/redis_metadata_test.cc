#include "metadata/redis_metadata.h"

#include <gtest/gtest.h>

namespace te {
namespace {

TEST(MetadataRedisServerStringTest, AcceptsHostPortAndUrls) {
  RedisServer s;
  ASSERT_TRUE(ParseRedisServer("127.0.0.1:6380", &s).ok());
  EXPECT_EQ(s.host, "127.0.0.1");
  EXPECT_EQ(s.port, 6380);
  EXPECT_EQ(s.db, 0u);
  EXPECT_TRUE(s.password.empty());

  ASSERT_TRUE(ParseRedisServer("cache.local", &s).ok());
  EXPECT_EQ(s.host, "cache.local");
  EXPECT_EQ(s.port, 6379);

  ASSERT_TRUE(ParseRedisServer("redis://:p%40ss@10.0.0.5:7000/4", &s).ok());
  EXPECT_EQ(s.host, "10.0.0.5");
  EXPECT_EQ(s.port, 7000);
  EXPECT_EQ(s.password, "p@ss");
  EXPECT_TRUE(s.user.empty());
  EXPECT_EQ(s.db, 4u);
  EXPECT_EQ(s.Display(), "10.0.0.5:7000/4");  // never the password

  ASSERT_TRUE(ParseRedisServer("redis://alice:secret@host", &s).ok());
  EXPECT_EQ(s.user, "alice");
  EXPECT_EQ(s.password, "secret");
  EXPECT_EQ(s.port, 6379);

  ASSERT_TRUE(ParseRedisServer("redis://[::1]:6390/", &s).ok());
  EXPECT_EQ(s.host, "::1");
  EXPECT_EQ(s.port, 6390);
  EXPECT_EQ(s.Display(), "[::1]:6390");
  ASSERT_TRUE(ParseRedisServer("[::1]", &s).ok());
  EXPECT_EQ(s.port, 6379);
}

TEST(MetadataRedisServerStringTest, RejectsMalformedServers) {
  RedisServer s;
  for (const char* bad :
       {"", "host:", "host:0", "host:99999", "host:port", "::1", "rediss://host:6379",
        "http://host:6379", "redis://host:6379/db", "redis://:%zz@host", "redis://"}) {
    EXPECT_EQ(ParseRedisServer(bad, &s).code(), Status::Code::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace te
