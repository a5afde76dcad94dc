//go:build !linux

package shared

import (
	"context"
	"errors"
	"net"
)

// hangupWatcher needs epoll; elsewhere every request gets a reader
// goroutine of its own to notice a hang-up instead (see fastServerConn.loop).
type hangupWatcher struct{}

func newHangupWatcher() (*hangupWatcher, error) { return nil, errors.New("no epoll") }

func (*hangupWatcher) watch(net.Conn, context.CancelFunc) (func(), error) {
	return nil, errors.New("no epoll")
}
