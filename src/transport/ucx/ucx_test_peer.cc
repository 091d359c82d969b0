// te_ucx_test_peer: the far side of ucx_test's cross-process cases. Starts a UCX
// context (UCX_TLS from argv[1]), maps one buffer of argv[2] bytes filled with the
// test pattern (seed 1), prints
//   READY <worker address> <buffer address> <length> <packed rkey>
// (bytes as test_util.h tokens) and serves until stdin closes or it is killed.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "common/strings.h"
#include "test_util.h"
#include "transport/ucx/ucx_context.h"

int main(int argc, char** argv) {
  uint64_t length = 0;
  if (argc != 3 || !te::ParseUint64(argv[2], &length) || length == 0) {
    std::fprintf(stderr, "usage: te_ucx_test_peer TLS LENGTH\n");
    return 2;
  }
  te::UcxOptions options;
  options.tls = argv[1];
  std::unique_ptr<te::UcxContext> context;
  te::Status status = te::UcxContext::Create(options, &context);
  std::vector<char> buffer(length);
  te_test::FillPattern(buffer.data(), length, 1);
  std::unique_ptr<te::UcxMemory> memory;
  if (status.ok()) status = context->Map(buffer.data(), length, true, &memory);
  if (!status.ok()) {
    std::fprintf(stderr, "te_ucx_test_peer: %s\n", status.ToString().c_str());
    return 1;
  }
  std::cout << "READY " << te_test::EncodeToken(context->worker_address(0)) << " "
            << reinterpret_cast<uintptr_t>(buffer.data()) << " " << length << " "
            << te_test::EncodeToken(memory->packed_rkey()) << std::endl;
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return 0;
}
