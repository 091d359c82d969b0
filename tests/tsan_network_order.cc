// Linked into test binaries that run both ends of a transfer in one process (or serve
// a test process's transfers). An engine thread receives a WRITE payload into a
// buffer and another later sends it back for a READ, or the test touches a buffer
// after a peer's transfer of it completed; that order travels through sockets, which
// ThreadSanitizer cannot see. Races on payload bytes inside the socket helpers are
// therefore suppressed in these binaries only; engine logic stays fully checked.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "race:te::SendAll\nrace:te::RecvAll\n";
}
#endif
