// C shim: Linux syscalls and constants Glibc's Swift overlay does not export cleanly (epoll, splice, pipe2, eventfd, signalfd, accept4, inotify, poll).
#ifndef C_HUDDLE_LINUX_H
#define C_HUDDLE_LINUX_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <signal.h>
#include <poll.h>

// Packed epoll event in a layout Swift can build without the packed-struct import issue.
typedef struct {
    uint32_t events;
    uint64_t data;
} huddle_epoll_event;

int huddle_epoll_create(void);
int huddle_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data);
int huddle_epoll_wait(int epfd, huddle_epoll_event *events, int maxevents, int timeout_ms);
int huddle_eventfd(void);
int huddle_accept4(int fd, struct sockaddr *addr, socklen_t *len);
ssize_t huddle_splice(int fd_in, int fd_out, size_t len, int more);
int huddle_pipe2(int fds[2]);
int huddle_signalfd(const int *signals, int count);
int huddle_block_signals(const int *signals, int count);
int huddle_read_signalfd(int fd);
uint64_t huddle_monotonic_ms(void);
ssize_t huddle_recv(int fd, void *buf, size_t len, int flags);
ssize_t huddle_send(int fd, const void *buf, size_t len);
ssize_t huddle_sendmsg(int fd, const struct msghdr *msg);
uint64_t huddle_monotonic_ns(void);
uint64_t huddle_realtime_ms(void);
int huddle_raise_nofile(uint64_t *soft, uint64_t *hard);
int huddle_socket_error(int fd);
void huddle_set_thread_name(const char *name);
int huddle_inotify_init(void);
int huddle_inotify_watch_directory(int fd, const char *path);
int huddle_inotify_drain(int fd);
int huddle_poll(struct pollfd *fds, int count, int timeout_ms);

// Constants (macros are not always importable).
extern const uint32_t HUDDLE_EPOLLIN;
extern const uint32_t HUDDLE_EPOLLOUT;
extern const uint32_t HUDDLE_EPOLLERR;
extern const uint32_t HUDDLE_EPOLLHUP;
extern const uint32_t HUDDLE_EPOLLRDHUP;
extern const uint32_t HUDDLE_EPOLLET;
extern const int HUDDLE_EPOLL_CTL_ADD;
extern const int HUDDLE_EPOLL_CTL_DEL;
extern const short HUDDLE_POLLIN;
extern const short HUDDLE_POLLOUT;
extern const short HUDDLE_POLLERR;
extern const short HUDDLE_POLLHUP;

#endif
