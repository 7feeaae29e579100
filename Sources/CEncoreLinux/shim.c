#define _GNU_SOURCE
#include "CEncoreLinux.h"
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/prctl.h>
#include <stddef.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

_Static_assert(CENCORE_EPOLLIN == EPOLLIN && CENCORE_EPOLLOUT == EPOLLOUT && CENCORE_EPOLLERR == EPOLLERR &&
                   CENCORE_EPOLLHUP == EPOLLHUP,
               "epoll event bits");
_Static_assert(CENCORE_EPOLL_CTL_ADD == EPOLL_CTL_ADD && CENCORE_EPOLL_CTL_DEL == EPOLL_CTL_DEL &&
                   CENCORE_EPOLL_CTL_MOD == EPOLL_CTL_MOD,
               "epoll ctl ops");

_Static_assert(sizeof(cencore_pollfd) == sizeof(struct pollfd) && offsetof(cencore_pollfd, events) ==
                   offsetof(struct pollfd, events) && offsetof(cencore_pollfd, revents) == offsetof(struct pollfd, revents),
               "pollfd layout");
_Static_assert(CENCORE_POLLIN == POLLIN && CENCORE_POLLOUT == POLLOUT && CENCORE_POLLERR == POLLERR &&
                   CENCORE_POLLHUP == POLLHUP,
               "poll event bits");

int cencore_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int cencore_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int cencore_epoll_wait(int epfd, cencore_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        out[i].events = evs[i].events;
        out[i].data = evs[i].data.u64;
    }
    return n;
}

int cencore_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int cencore_accept(int fd) { return accept4(fd, 0, 0, SOCK_NONBLOCK | SOCK_CLOEXEC); }

int cencore_poll_ns(cencore_pollfd *fds, unsigned long count, int64_t timeout_ns) {
    if (timeout_ns < 0) return ppoll((struct pollfd *)fds, count, 0, 0);
    struct timespec ts;
    ts.tv_sec = (time_t)(timeout_ns / 1000000000);
    ts.tv_nsec = (long)(timeout_ns % 1000000000);
    return ppoll((struct pollfd *)fds, count, &ts, 0);
}

int cencore_set_timer_slack_ns(unsigned long ns) { return prctl(PR_SET_TIMERSLACK, ns, 0, 0, 0); }

int cencore_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}
