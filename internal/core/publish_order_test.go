package core

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// orderSeam is a fakeSeam that counts the pickers whose Changed was closed
// before the seam had their successor: a call woken by Changed then loads
// the replaced picker again, finds it stale and spins until the seam has
// the next one.
type orderSeam struct {
	*fakeSeam
	last        *Picker
	published   int
	early       int
	earlyBefore []int // the publish numbers at which it happened
}

func (s *orderSeam) Publish(q *Picker) {
	s.published++
	if s.last.Stale() {
		s.early++
		s.earlyBefore = append(s.earlyBefore, s.published)
	}
	s.last = q
}

// A picker announces its successor (Changed) only once the seam has it:
// Flush and Close alike.
func TestChangedOnlyOnceTheSuccessorIsPublished(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2})
		s := &orderSeam{fakeSeam: f, last: f.picker()}
		f.k.seam = s
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b")) })
		f.readyAll()
		f.do(func(k *Core, now time.Time) { k.Close(now, status.Error(codes.Canceled, "closed")) })
		require.GreaterOrEqual(t, s.published, 3, "the resolution, the connections ready and the close each publish")
		require.Zero(t, s.early, "of %d pickers published, %d replaced pickers had closed Changed before the seam had their successor (at publishes %v)", s.published, s.early, s.earlyBefore)
	})
}
