//go:build !linux

package agent

import (
	"errors"
	"net"
)

// peerUID is not implemented on this platform: WithAllowedUIDs refuses
// every connection.
func peerUID(net.Conn) (uint32, error) {
	return 0, errors.New("peer credentials are not supported on this platform")
}
