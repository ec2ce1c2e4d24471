package transport

// pendingSlots is a power of two above what one connection usually has in
// flight.
const pendingSlots = 128

// pendingTable maps event ids to waiting calls. Ids are sequential, so id
// i lives in slot i mod pendingSlots, found without hashing; a call still
// waiting when its slot is needed again moves to a map. It also lists the
// calls in send order, the order of their deadlines. Guarded by session.mu.
type pendingTable struct {
	slots          *[pendingSlots]*call // allocated by the first put
	overflow       map[uint64]*call
	n              int
	oldest, newest *call
}

// len returns the number of calls in the table.
func (t *pendingTable) len() int { return t.n }

// put adds c, whose id no call in the table has.
func (t *pendingTable) put(c *call) {
	if t.slots == nil {
		t.slots = new([pendingSlots]*call)
	}
	i := c.id % pendingSlots
	if old := t.slots[i]; old != nil {
		if t.overflow == nil {
			t.overflow = make(map[uint64]*call)
		}
		t.overflow[old.id] = old
	}
	t.slots[i] = c
	t.n++
	c.prev, c.next = t.newest, nil
	if t.newest != nil {
		t.newest.next = c
	} else {
		t.oldest = c
	}
	t.newest = c
}

// get returns the call waiting for id, or nil.
func (t *pendingTable) get(id uint64) *call {
	if t.slots == nil {
		return nil
	}
	if c := t.slots[id%pendingSlots]; c != nil && c.id == id {
		return c
	}
	if len(t.overflow) > 0 {
		return t.overflow[id]
	}
	return nil
}

// has reports whether c is in the table.
func (t *pendingTable) has(c *call) bool { return t.get(c.id) == c }

// remove takes c, which is in the table, out of it.
func (t *pendingTable) remove(c *call) {
	if i := c.id % pendingSlots; t.slots[i] == c {
		t.slots[i] = nil
	} else {
		delete(t.overflow, c.id)
	}
	t.n--
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		t.oldest = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		t.newest = c.prev
	}
	c.prev, c.next = nil, nil
}

// clear empties the table and returns its calls in send order.
func (t *pendingTable) clear() []*call {
	calls := make([]*call, 0, t.n)
	for c := t.oldest; c != nil; {
		next := c.next
		c.prev, c.next = nil, nil
		calls = append(calls, c)
		c = next
	}
	*t = pendingTable{}
	return calls
}
