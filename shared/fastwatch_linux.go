package shared

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
)

// hangupWatcher notices the host closing a fast-transport connection while
// the connection's goroutine is busy in a handler call, and cancels that
// call's context. It is one epoll instance waiting for EPOLLRDHUP on every
// connection, in a goroutine of its own; requests arriving do not wake it,
// so the hot path pays nothing for it.
type hangupWatcher struct {
	epfd int

	mu     sync.Mutex
	next   int32
	cancel map[int32]context.CancelFunc
}

func newHangupWatcher() (*hangupWatcher, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &hangupWatcher{epfd: epfd, cancel: map[int32]context.CancelFunc{}}
	go w.run()
	return w, nil
}

// watch calls cancel once the peer of c hangs up. The returned func stops
// watching; call it before closing c.
func (w *hangupWatcher) watch(c net.Conn, cancel context.CancelFunc) (func(), error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, errors.New("not a socket")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	w.next++
	key := w.next // epoll hands back this key, never the fd, which may be reused
	w.cancel[key] = cancel
	w.mu.Unlock()
	var fd int
	var cerr error
	err = rc.Control(func(f uintptr) {
		fd = int(f)
		ev := syscall.EpollEvent{Events: syscall.EPOLLRDHUP | syscall.EPOLLONESHOT, Fd: key}
		cerr = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fd, &ev)
	})
	if err == nil {
		err = cerr
	}
	unwatch := func() {
		rc.Control(func(uintptr) { syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, fd, nil) })
		w.mu.Lock()
		delete(w.cancel, key)
		w.mu.Unlock()
	}
	if err != nil {
		unwatch()
		return nil, err
	}
	return unwatch, nil
}

func (w *hangupWatcher) run() {
	events := make([]syscall.EpollEvent, 64)
	for {
		n, err := syscall.EpollWait(w.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			w.mu.Lock()
			cancel := w.cancel[ev.Fd]
			w.mu.Unlock()
			if cancel != nil {
				cancel()
			}
		}
	}
}
