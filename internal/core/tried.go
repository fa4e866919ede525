package core

// Tried holds the backends earlier attempts of a call went to, so a retry
// goes to one not tried yet whenever one can take it. The zero value is
// empty; it is not safe for concurrent use (one call owns it). A pick
// only reads it: it hands the policies a copy (a zone-aware pick, one
// narrowed to each zone's backends).
type Tried struct {
	n int
	b [8]*Backend
}

// Add records b; past eight backends the oldest are kept.
func (t *Tried) Add(b *Backend) {
	if t.n < len(t.b) {
		t.b[t.n] = b
		t.n++
	}
}

// Remove forgets b: an attempt placed on it sent nothing there after all.
func (t *Tried) Remove(b *Backend) {
	for i, x := range t.b[:t.n] {
		if x == b {
			copy(t.b[i:t.n], t.b[i+1:t.n])
			t.n--
			t.b[t.n] = nil
			return
		}
	}
}

// Has reports whether b was tried.
func (t *Tried) Has(b *Backend) bool {
	if t == nil {
		return false
	}
	for _, x := range t.b[:t.n] {
		if x == b {
			return true
		}
	}
	return false
}

// Len is how many backends were tried.
func (t *Tried) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}
