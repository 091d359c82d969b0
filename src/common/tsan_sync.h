// What ThreadSanitizer cannot order. A target's buffer is written by one I/O thread
// receiving a peer's WRITE and read by another sending a later READ of the same bytes.
// The order between them is real, but it runs through the peer and its sockets, and
// TSan marks a recv()'s or sendmsg()'s access after the call returns, so a thread
// descheduled there is reported racing with an access the peer already ordered after
// it. The target's payload I/O therefore hides its accesses to those buffers from TSan
// (the engine's own state is still checked); outside TSan builds this is nothing.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define TE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TE_TSAN 1
#endif
#endif

#ifdef TE_TSAN
extern "C" {
void AnnotateIgnoreReadsBegin(const char* file, int line);
void AnnotateIgnoreReadsEnd(const char* file, int line);
void AnnotateIgnoreWritesBegin(const char* file, int line);
void AnnotateIgnoreWritesEnd(const char* file, int line);
}
#endif

namespace te {

// For its scope, this thread's memory accesses (its syscalls' too) go unchecked.
class TsanHiddenAccesses {
 public:
#ifdef TE_TSAN
  TsanHiddenAccesses() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~TsanHiddenAccesses() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
#else
  TsanHiddenAccesses() {}
  ~TsanHiddenAccesses() {}  // not trivial: a scoped guard, never an unused variable
#endif
  TsanHiddenAccesses(const TsanHiddenAccesses&) = delete;
  TsanHiddenAccesses& operator=(const TsanHiddenAccesses&) = delete;
};

}  // namespace te
