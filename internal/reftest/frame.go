package reftest

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Frame types of the reference's Unix-socket protocol (uds.rs MessageType).
const (
	TypeHandshakeRequest  byte = 0x01
	TypeHandshakeResponse byte = 0x02
	TypeRequestHeaders    byte = 0x10
	TypeRequestBodyChunk  byte = 0x11
	TypeResponseHeaders   byte = 0x12
	TypeResponseBodyChunk byte = 0x13
	TypeRequestComplete   byte = 0x14
	TypeWebSocketFrame    byte = 0x15
	TypeGuardrailInspect  byte = 0x16
	TypeConfigure         byte = 0x17
	TypeAgentResponse     byte = 0x20
	TypeHealthStatus      byte = 0x30
	TypeMetricsReport     byte = 0x31
	TypeConfigUpdate      byte = 0x32
	TypeFlowControl       byte = 0x33
	TypeCancel            byte = 0x40
	TypePing              byte = 0x41
	TypePong              byte = 0x42
)

// MaxFrame is the reference's MAX_UDS_MESSAGE_SIZE (16 MiB).
const MaxFrame = 16 << 20

// AppendFrame appends [u32 BE length of type+payload][type][payload] to dst.
func AppendFrame(dst []byte, typ byte, payload []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)+1))
	dst = append(dst, typ)
	return append(dst, payload...)
}

// WriteFrame writes one frame in a single Write call.
func WriteFrame(w io.Writer, typ byte, payload []byte) error {
	if len(payload)+1 > MaxFrame {
		return fmt.Errorf("reftest: frame of %d bytes exceeds %d", len(payload)+1, MaxFrame)
	}
	_, err := w.Write(AppendFrame(nil, typ, payload))
	return err
}

// ReadFrame reads one frame; like read_message in uds.rs it refuses a zero
// length and anything over [MaxFrame], but not an unknown type.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 || n > MaxFrame {
		return 0, nil, fmt.Errorf("reftest: bad frame length %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return 0, nil, fmt.Errorf("reftest: short frame: %w", err)
	}
	return buf[0], buf[1:], nil
}
