package server

import (
	"hash/maphash"
	"math/bits"
)

// The posture memory finds a device's slot through an open-addressing
// table of slot numbers rather than a map[string]int32: the ids are
// already in the entries, so the table holds 4 bytes a device where a map
// holds a string header, the value and its own overhead (~30 bytes, 3 MB
// for a 100k fleet). A slot in the table is 1 + an entry's index, 0 when
// empty; probing is linear and compares against the entries' own ids.
// Only a sweep forgets devices, and it rebuilds the table, so there are
// no tombstones.

// find returns the slot of the device id, if remembered; m.mu is held.
func (m *PostureMemory) find(id string) (int32, bool) {
	if m.live == 0 {
		return 0, false
	}
	t := m.table
	for i := m.home(id); t[i] != 0; i = nextSlot(t, i) {
		// #nosec G115 -- table values are 1 + an int32 slot
		if s := int32(t[i] - 1); m.entries[s].id() == id {
			return s, true
		}
	}
	return 0, false
}

// index makes slot s findable by its entry's id; m.mu is held, and the
// id must not be indexed yet. The table grows first, from the entries
// already indexed: s's own is skipped if it is packed already.
func (m *PostureMemory) index(s int32) {
	if (m.live+1)*3 > len(m.table)*2 {
		m.rehash(max(16, 2*(m.live+1)), s)
	}
	m.put(s)
	m.live++
}

// put places slot s in the table, which has room.
func (m *PostureMemory) put(s int32) {
	t := m.table
	i := m.home(m.entries[s].id())
	for t[i] != 0 {
		i = nextSlot(t, i)
	}
	t[i] = uint32(s) + 1 // #nosec G115 -- s is a non-negative int32
}

// rehash rebuilds the table with size slots from the entries that hold a
// device, but skip; m.mu is held.
func (m *PostureMemory) rehash(size int, skip int32) {
	m.table = make([]uint32, size)
	m.live = 0
	for s := range m.entries {
		if m.entries[s].ids != "" && int32(s) != skip { // #nosec G115 -- entries are at most max, itself an int32
			m.put(int32(s)) // #nosec G115 -- entries are at most max, itself an int32
			m.live++
		}
	}
}

// home is where id's probe sequence starts: the hash scaled to the table.
func (m *PostureMemory) home(id string) int {
	hi, _ := bits.Mul64(maphash.String(m.seed, id), uint64(len(m.table)))
	return int(hi) // #nosec G115 -- the high word of h*len is below len
}

func nextSlot(t []uint32, i int) int {
	if i++; i == len(t) {
		return 0
	}
	return i
}
