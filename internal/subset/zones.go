package subset

import (
	"cmp"
	"slices"
)

// SelectZones is Select for backends in zones (zones[i] is the zone of
// keys[i]; "" is a zone like any other): the client's subset has the
// zones in the proportions of the fleet, as near as size allows, so that
// a zone-aware split computed from the subset is the fleet's. Each zone
// gets its share of size by the largest remainder, and at least one
// backend while size is at least the number of zones (a client keeps a
// local backend, and every zone a way to it); within each zone, Select
// chooses them from that zone's keys with the client's index, so the
// fleet's clients spread their connections evenly within every zone.
//
// It returns the keys in zone order (zones sorted by name), each zone's
// in Select's order, or all keys when size ≥ len(keys); nil for an empty
// keys, a negative index, a size below 1 or zones not as long as keys.
// keys must not hold duplicates. It modifies neither slice and is safe
// for concurrent use.
func SelectZones(keys, zones []string, index, size int) []string {
	if len(keys) == 0 || len(zones) != len(keys) || index < 0 || size < 1 {
		return nil
	}
	if size >= len(keys) {
		return slices.Clone(keys)
	}
	byZone := make(map[string][]string)
	for i, k := range keys {
		byZone[zones[i]] = append(byZone[zones[i]], k)
	}
	names := make([]string, 0, len(byZone))
	for z := range byZone {
		names = append(names, z)
	}
	slices.Sort(names)
	counts := make([]int, len(names))
	for i, z := range names {
		counts[i] = len(byZone[z])
	}
	out := make([]string, 0, size)
	for i, n := range apportion(counts, size) {
		if n > 0 {
			out = append(out, Select(byZone[names[i]], index, n)...)
		}
	}
	return out
}

// apportion splits size (below the sum of counts) over groups of counts[i]
// members in proportion to the counts: each its quota size×count/total
// rounded down, at least 1 while size is at least len(counts), never more
// than its count; then one more to the groups furthest below their quota,
// or one fewer from those furthest above it, until the sum is size. Ties
// go to the lower index.
func apportion(counts []int, size int) []int {
	total := 0
	for _, n := range counts {
		total += n
	}
	quota := make([]float64, len(counts))
	alloc := make([]int, len(counts))
	sum := 0
	for i, n := range counts {
		quota[i] = float64(size) * float64(n) / float64(total)
		alloc[i] = min(n, int(quota[i]))
		if size >= len(counts) {
			alloc[i] = max(alloc[i], 1)
		}
		sum += alloc[i]
	}
	// below: how far group i is below its quota (above it when negative).
	below := func(i int) float64 { return quota[i] - float64(alloc[i]) }
	for sum != size {
		best := -1
		for i := range counts {
			switch {
			case sum < size && alloc[i] < counts[i]:
				if best < 0 || cmp.Compare(below(i), below(best)) > 0 {
					best = i
				}
			case sum > size && alloc[i] > 1:
				if best < 0 || cmp.Compare(below(i), below(best)) < 0 {
					best = i
				}
			}
		}
		if sum < size {
			alloc[best]++
			sum++
		} else {
			alloc[best]--
			sum--
		}
	}
	return alloc
}
