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
