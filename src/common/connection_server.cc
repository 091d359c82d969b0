#include "common/connection_server.h"

#include <sys/socket.h>

#include "common/logging.h"

namespace te {

Status ConnectionServer::Start(const std::string& host, uint16_t port, uint32_t max_connections,
                               Handler handler) {
  TE_RETURN_IF_ERROR(Listen(host, port, &listener_, &port_));
  max_connections_ = max_connections;
  handler_ = std::move(handler);
  acceptor_ = std::thread([this] { AcceptLoop(); });
  return Status::OK();
}

void ConnectionServer::AcceptLoop() {
  while (!stopping_.load()) {
    UniqueFd fd;
    Status s = Accept(listener_.get(), &fd);
    if (s.code() == Status::Code::kCancelled || stopping_.load()) break;
    if (!s.ok()) {
      TE_LOG(Warning) << "accept on port " << port_ << ": " << s.ToString();
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (live_fds_.size() >= max_connections_) {
      TE_LOG(Warning) << "port " << port_ << ": refusing connection beyond " << max_connections_;
      continue;
    }
    int raw = fd.Release();
    live_fds_.insert(raw);
    // Detached: Stop() waits on live_fds_ draining instead of joining.
    std::thread([this, raw] {
      handler_(raw);
      std::lock_guard<std::mutex> lock(mu_);
      live_fds_.erase(raw);
      UniqueFd closer(raw);
      drained_.notify_all();
    }).detach();
  }
}

void ConnectionServer::Stop() {
  if (!listener_.valid() || stopping_.exchange(true)) return;
  ::shutdown(listener_.get(), SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  std::unique_lock<std::mutex> lock(mu_);
  for (int fd : live_fds_) ::shutdown(fd, SHUT_RDWR);
  drained_.wait(lock, [this] { return live_fds_.empty(); });
  listener_.Reset();
}

}  // namespace te
