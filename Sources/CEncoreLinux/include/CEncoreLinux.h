// Linux syscalls that Glibc's Swift module does not expose (epoll, eventfd, accept4, poll, the
// thread's nice value).
// The header declares plain functions only (no system headers, so no _GNU_SOURCE clash with
// other modules); shim.c implements them. Imported `internal` (never re-exported) by each module
// that calls it: the reactor, sockets and mailbox, the load generator's poller, `ThreadPriority`.
#ifndef ENCORE_CENCORELINUX_H
#define ENCORE_CENCORELINUX_H
#include <stdint.h>

/// One epoll event as (events, data): Swift never sees the packed epoll_event struct.
typedef struct {
    uint32_t events;
    uint64_t data;
} cencore_event;

/// epoll_create1(EPOLL_CLOEXEC).
int cencore_epoll_create(void);
/// epoll_ctl with `data` as the event's u64 (events ignored for DEL).
int cencore_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
/// epoll_wait into `out` (capacity `max`, at most 256); returns the count or -1 (errno set).
int cencore_epoll_wait(int epfd, cencore_event *out, int max, int timeout_ms);
/// eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC).
int cencore_eventfd(void);
/// accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC).
int cencore_accept(int fd);

/// One poll entry, laid out exactly as `struct pollfd` (checked in shim.c).
typedef struct {
    int fd;
    short events;
    short revents;
} cencore_pollfd;

/// ppoll with a timeout in nanoseconds (negative: wait forever); returns the ready count or -1
/// (errno set). For the load generator's client loops, which need sub-millisecond timers.
int cencore_poll_ns(cencore_pollfd *fds, unsigned long count, int64_t timeout_ns);
/// prctl(PR_SET_TIMERSLACK, ns) for the calling thread; 0 on success.
int cencore_set_timer_slack_ns(unsigned long ns);
/// setpriority(PRIO_PROCESS, gettid(), nice) for the calling thread only; 0 on success.
int cencore_set_thread_nice(int nice);

// Linux ABI values (sys/epoll.h, poll.h).
enum {
    CENCORE_EPOLLIN = 0x001,
    CENCORE_EPOLLOUT = 0x004,
    CENCORE_EPOLLERR = 0x008,
    CENCORE_EPOLLHUP = 0x010,
    CENCORE_EPOLL_CTL_ADD = 1,
    CENCORE_EPOLL_CTL_DEL = 2,
    CENCORE_EPOLL_CTL_MOD = 3,
    CENCORE_POLLIN = 0x001,
    CENCORE_POLLOUT = 0x004,
    CENCORE_POLLERR = 0x008,
    CENCORE_POLLHUP = 0x010,
};
#endif
