#include "rpc/handshake.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "common/logging.h"
#include "common/socket.h"
#include "rpc/wire.h"

namespace te::wire {
namespace {

constexpr const char* kAuthHmac = "hmac-sha256";
constexpr const char* kAuthNone = "none";
constexpr size_t kNonceBytes = 16;

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

Status NewNonce(std::string* nonce) {
  unsigned char raw[kNonceBytes];
  if (RAND_bytes(raw, sizeof(raw)) != 1) return Status::Internal("no randomness for a nonce");
  *nonce = Hex(raw, sizeof(raw));
  return Status::OK();
}

// Proofs are bound to the channel, both nonces and the direction, so neither a
// recorded proof nor one reflected back at its sender is valid on a new connection.
std::string Proof(const std::string& secret, const char* role, const std::string& channel,
                  const std::string& client_nonce, const std::string& server_nonce) {
  return HmacSha256Hex(
      secret, std::string(role) + '\n' + channel + '\n' + client_nonce + '\n' + server_nonce);
}

bool SameProof(const std::string& expected, const nlohmann::json& j) {
  if (!j.is_object() || !j.contains("proof") || !j["proof"].is_string()) return false;
  const std::string& got = j["proof"].get_ref<const std::string&>();
  return got.size() == expected.size() &&
         CRYPTO_memcmp(got.data(), expected.data(), expected.size()) == 0;
}

bool StringField(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_string();
}

// Sends a request frame and waits for its response, checking that it answers it.
Status Exchange(int fd, Opcode opcode, const nlohmann::json& request, nlohmann::json* reply) {
  FrameHeader h;
  h.opcode = opcode;
  TE_RETURN_IF_ERROR(SendFrame(fd, h, request.dump()));
  FrameHeader rh;
  std::string payload;
  TE_RETURN_IF_ERROR(RecvFrame(fd, &rh, &payload));
  if (rh.opcode != opcode || !rh.is_response()) {
    return Status::ProtocolError("peer did not answer the handshake");
  }
  TE_RETURN_IF_ERROR(ResponseStatus(rh, payload));
  *reply = nlohmann::json::parse(payload, nullptr, false);
  if (!reply->is_object()) return Status::ProtocolError("malformed handshake answer");
  return Status::OK();
}

// Reads the next request frame, which must be `opcode`, as a JSON object.
Status ReceiveRequest(int fd, Opcode opcode, FrameHeader* h, nlohmann::json* j) {
  std::string payload;
  TE_RETURN_IF_ERROR(RecvFrame(fd, h, &payload));
  if (h->opcode != opcode || h->is_response()) {
    return Status::ProtocolError(opcode == Opcode::kHello ? "connection did not start with HELLO"
                                                          : "expected AUTH after HELLO");
  }
  *j = nlohmann::json::parse(payload, nullptr, false);
  return Status::OK();
}

// Answers `request` with verdict and, on success, the JSON body.
Status Answer(int fd, const FrameHeader& request, const Status& verdict,
              const nlohmann::json& body) {
  TE_RETURN_IF_ERROR(SendResponse(fd, request, verdict, verdict.ok() ? body.dump() : ""));
  return verdict;
}

}  // namespace

void LogRefusedHandshake(const char* channel, int fd, const Status& status) {
  if (status.code() == Status::Code::kPermissionDenied) {
    TE_LOG(Warning) << channel << ": refused " << PeerAddress(fd) << ": " << status.message();
  } else {
    TE_LOG(Info) << channel << ": rejected connection from " << PeerAddress(fd) << ": "
                 << status.ToString();
  }
}

std::string HmacSha256Hex(const std::string& key, const std::string& message) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  return Hex(mac, len);
}

Status ClientHello(int fd, const std::string& channel, const Credentials& self) {
  const bool auth = !self.secret.empty();
  std::string client_nonce;
  TE_RETURN_IF_ERROR(NewNonce(&client_nonce));
  nlohmann::json hello = {{"version", kVersion},
                          {"channel", channel},
                          {"from", self.name},
                          {"auth", auth ? kAuthHmac : kAuthNone},
                          {"nonce", client_nonce}};
  nlohmann::json reply;
  TE_RETURN_IF_ERROR(Exchange(fd, Opcode::kHello, hello, &reply));
  if (!auth) return Status::OK();
  if (!StringField(reply, "nonce")) return Status::ProtocolError("HELLO answer lacks a nonce");
  const std::string server_nonce = reply["nonce"].get<std::string>();
  nlohmann::json proof = {
      {"proof", Proof(self.secret, "client", channel, client_nonce, server_nonce)}};
  TE_RETURN_IF_ERROR(Exchange(fd, Opcode::kAuth, proof, &reply));
  if (!SameProof(Proof(self.secret, "server", channel, client_nonce, server_nonce), reply)) {
    return Status::PermissionDenied("peer failed to prove the cluster secret");
  }
  return Status::OK();
}

Status RefuseHello(int fd, const Status& why) {
  FrameHeader h;
  nlohmann::json hello;
  TE_RETURN_IF_ERROR(ReceiveRequest(fd, Opcode::kHello, &h, &hello));
  return SendResponse(fd, h, why, "");
}

Status ServerHello(int fd, const std::string& channel, const std::string& secret,
                   std::string* peer_name) {
  FrameHeader h;
  nlohmann::json hello;
  TE_RETURN_IF_ERROR(ReceiveRequest(fd, Opcode::kHello, &h, &hello));
  const bool auth = !secret.empty();
  Status verdict;
  if (!hello.is_object() || !StringField(hello, "channel") || !StringField(hello, "from") ||
      !StringField(hello, "nonce") || !StringField(hello, "auth")) {
    verdict = Status::ProtocolError("malformed HELLO");
  } else if (hello["channel"].get<std::string>() != channel) {
    verdict = Status::InvalidArgument("this port serves channel '" + channel + "', not '" +
                                      hello["channel"].get<std::string>() + "'");
  } else if (auth && hello["auth"] != kAuthHmac) {
    verdict = Status::PermissionDenied("this engine requires the cluster secret");
  } else if (!auth && hello["auth"] != kAuthNone) {
    verdict = Status::PermissionDenied("this engine has no cluster secret configured");
  }
  std::string server_nonce;
  if (verdict.ok() && auth) verdict = NewNonce(&server_nonce);
  TE_RETURN_IF_ERROR(Answer(fd, h, verdict, {{"nonce", server_nonce}}));
  const std::string from = hello["from"].get<std::string>();
  if (auth) {
    nlohmann::json proof;
    TE_RETURN_IF_ERROR(ReceiveRequest(fd, Opcode::kAuth, &h, &proof));
    const std::string client_nonce = hello["nonce"].get<std::string>();
    if (!SameProof(Proof(secret, "client", channel, client_nonce, server_nonce), proof)) {
      verdict = Status::PermissionDenied("peer '" + from + "' failed to prove the cluster secret");
    }
    TE_RETURN_IF_ERROR(Answer(
        fd, h, verdict, {{"proof", Proof(secret, "server", channel, client_nonce, server_nonce)}}));
  }
  *peer_name = from;
  return Status::OK();
}

}  // namespace te::wire
