// Happens-before edges that ThreadSanitizer cannot see by itself, made explicit.
//
// Bytes sent on a socket are received by another thread (of this process, or of a
// peer that answers and so lets one of ours go on): a thread that wrote a buffer and
// then sent a request is ordered before the thread that later receives the answer
// and reads the buffer, but that order travels through the kernel. The socket
// helpers (common/socket.cc) release this process's socket hand-off before every send
// and acquire it after every receive, so TSan sees that order, and only that order:
// a race that does not cross a send and a later receive (say, a completion reported
// before the receive into user memory has finished) is still reported.
// tests/tsan_socket_race.cc shows both.
//
// One order this cannot show: TSan marks a recv()'s or sendmsg()'s access to its buffer
// after the call returns, which may be after a release that follows it, and after the
// peer already acted on what was sent. A target's buffer sent by one I/O thread for a
// READ, then written by another receiving the WRITE the peer sent once that READ was
// done, is then reported as a race. So the target's payload I/O hides its accesses to
// those buffers (TsanHiddenAccesses); its own state is still checked.
//
// Without TSan these are no-ops.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define TE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TE_TSAN 1
#endif
#endif

#ifdef TE_TSAN
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);

namespace te::tsan {
// The one synchronisation object of the socket hand-off.
inline char socket_hand_off;
}  // namespace te::tsan

// Everything this thread did so far happens before what follows a later receive.
#define TE_TSAN_RELEASE_SOCKET_HAND_OFF() __tsan_release(&::te::tsan::socket_hand_off)
// What follows happens after everything that preceded earlier sends.
#define TE_TSAN_ACQUIRE_SOCKET_HAND_OFF() __tsan_acquire(&::te::tsan::socket_hand_off)
#else
#define TE_TSAN_RELEASE_SOCKET_HAND_OFF() ((void)0)
#define TE_TSAN_ACQUIRE_SOCKET_HAND_OFF() ((void)0)
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
