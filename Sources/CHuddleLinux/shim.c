// Thin wrappers over Linux syscalls for Swift; errno is left for the Swift caller to read immediately.
#define _GNU_SOURCE
#include "CHuddleLinux.h"
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/inotify.h>
#include <poll.h>
#include <sys/syscall.h>

const uint32_t HUDDLE_EPOLLIN = EPOLLIN;
const uint32_t HUDDLE_EPOLLOUT = EPOLLOUT;
const uint32_t HUDDLE_EPOLLERR = EPOLLERR;
const uint32_t HUDDLE_EPOLLHUP = EPOLLHUP;
const uint32_t HUDDLE_EPOLLRDHUP = EPOLLRDHUP;
const uint32_t HUDDLE_EPOLLET = EPOLLET;
const int HUDDLE_EPOLL_CTL_ADD = EPOLL_CTL_ADD;
const int HUDDLE_EPOLL_CTL_DEL = EPOLL_CTL_DEL;

int huddle_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int huddle_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

int huddle_epoll_wait(int epfd, huddle_epoll_event *out, int maxevents, int timeout_ms) {
    struct epoll_event evs[512];
    if (maxevents > 512) maxevents = 512;
    int n = epoll_wait(epfd, evs, maxevents, timeout_ms);
    for (int i = 0; i < n; i++) {
        out[i].events = evs[i].events;
        out[i].data = evs[i].data.u64;
    }
    return n;
}

int huddle_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int huddle_accept4(int fd, struct sockaddr *addr, socklen_t *len) {
    return accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

ssize_t huddle_splice(int fd_in, int fd_out, size_t len, int more) {
    unsigned int flags = SPLICE_F_NONBLOCK | SPLICE_F_MOVE;
    if (more) flags |= SPLICE_F_MORE;
    return splice(fd_in, NULL, fd_out, NULL, len, flags);
}

int huddle_pipe2(int fds[2]) { return pipe2(fds, O_NONBLOCK | O_CLOEXEC); }

static int fill_set(sigset_t *set, const int *signals, int count) {
    sigemptyset(set);
    for (int i = 0; i < count; i++) sigaddset(set, signals[i]);
    return 0;
}

int huddle_block_signals(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    return pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int huddle_signalfd(const int *signals, int count) {
    sigset_t set;
    fill_set(&set, signals, count);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

// Returns the signal number read, 0 when none is pending, -1 on error.
int huddle_read_signalfd(int fd) {
    struct signalfd_siginfo info;
    ssize_t n = read(fd, &info, sizeof info);
    if (n == (ssize_t)sizeof info) return (int)info.ssi_signo;
    if (n < 0 && errno == EAGAIN) return 0;
    return -1;
}

uint64_t huddle_monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t huddle_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t huddle_realtime_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int huddle_raise_nofile(uint64_t *soft, uint64_t *hard) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) { getrlimit(RLIMIT_NOFILE, &rl); }
    }
    *soft = rl.rlim_cur;
    *hard = rl.rlim_max;
    return 0;
}

int huddle_socket_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
    return err;
}

void huddle_set_thread_name(const char *name) { pthread_setname_np(pthread_self(), name); }

// inotify (not in Glibc's Swift module map): a non-blocking descriptor, and a watch on a directory for the events that
// replace or rewrite a file in it (an editor's write, mv over it, Kubernetes' ..data symlink swap).
int huddle_inotify_init(void) { return inotify_init1(IN_NONBLOCK | IN_CLOEXEC); }

int huddle_inotify_watch_directory(int fd, const char *path) {
    return inotify_add_watch(fd, path, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_ATTRIB
                                           | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
}

// Reads and discards queued events; returns how many were read, 0 when none was queued, -1 on error. The watcher only
// needs to know that something changed (it re-reads the file), not what.
int huddle_inotify_drain(int fd) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int events = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) return (n < 0 && errno != EAGAIN) ? -1 : events;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            events++;
            p += sizeof(struct inotify_event) + e->len;
        }
    }
}

int huddle_poll(struct pollfd *fds, int count, int timeout_ms) { return poll(fds, (nfds_t)count, timeout_ms); }

const short HUDDLE_POLLIN = POLLIN;
const short HUDDLE_POLLOUT = POLLOUT;
const short HUDDLE_POLLERR = POLLERR;
const short HUDDLE_POLLHUP = POLLHUP;

// Socket I/O as raw system calls: glibc's recv/send/sendmsg are thread-cancellation points and wrap every call in
// enabling and disabling asynchronous cancellation (about 1.5% of a worker's CPU per request, measured with perf);
// Huddle never cancels threads. Same results and errno as the libc calls.
ssize_t huddle_recv(int fd, void *buf, size_t len, int flags) {
    return syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
}
ssize_t huddle_send(int fd, const void *buf, size_t len) {
    return syscall(SYS_sendto, fd, buf, len, MSG_NOSIGNAL, NULL, 0);
}
ssize_t huddle_sendmsg(int fd, const struct msghdr *msg) {
    return syscall(SYS_sendmsg, fd, msg, MSG_NOSIGNAL);
}
