package transport

// Watches returns how many context watches c keeps (see ctxWatch): a
// test looks at the machinery it cannot observe from outside.
func Watches(c Conn) int {
	s := c.(*session)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.watches)
}
