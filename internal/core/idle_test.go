package core

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/connectivity"
)

// The idle shrink retires surplus connections, but never a
// READY one that would leave fewer READY connections than the floor; a
// failing surplus connection goes first.
func TestIdleShrinkCountsOnlyReadyForTheFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 2, MaxSize: 4, IdleTimeout: 40 * time.Millisecond})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		f.readyAll()
		b := f.backend("a")
		f.do(func(k *Core, now time.Time) {
			c := k.dial(now, b) // a third connection, which then fails
			k.ConnState(now, c, connectivity.TransientFailure, errors.New("refused"))
		})
		time.Sleep(200 * time.Millisecond)
		synctest.Wait()
		require.Equal(t, []State{Ready, Ready}, f.states(b))
	})
}

// State changes that stop or start a backend serving are warned about
// with their cause, at most once per warnEvery per backend; a flapping
// backend's other changes are counted in the next warning.
func TestStateWarningsAreRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf safeBuffer
		f := newFake(t, Config{Size: 1, Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a")) })
		c := f.backend("a").conns[0]
		for range 5 {
			f.do(func(k *Core, now time.Time) {
				k.ConnState(now, c, connectivity.TransientFailure, errors.New("connection refused"))
				k.ConnState(now, c, connectivity.Ready, nil)
			})
			time.Sleep(time.Second)
		}
		require.Equal(t, 1, strings.Count(buf.String(), "level=WARN"), buf.String())
		require.Contains(t, buf.String(), "err=\"connection refused\"")
		require.Contains(t, buf.String(), "target=fake:///test")
		time.Sleep(warnEvery)
		f.do(func(k *Core, now time.Time) {
			k.ConnState(now, c, connectivity.TransientFailure, errors.New("connection refused"))
		})
		require.Equal(t, 2, strings.Count(buf.String(), "level=WARN"), buf.String())
		require.Contains(t, buf.String(), "changes_not_logged=9")
	})
}

type safeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *safeBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *safeBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// An idle check that retires nothing publishes no picker: the pickers
// callers hold stay current, and nothing is rebuilt every quarter of the
// idle timeout.
func TestIdleCheckThatRetiresNothingPublishesNoPicker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake(t, Config{Size: 1, MaxSize: 2, IdleTimeout: 40 * time.Millisecond})
		f.do(func(k *Core, now time.Time) { k.Resolved(now, groupsOf("a", "b")) })
		f.readyAll()
		var before *Picker
		var every time.Duration
		f.do(func(k *Core, _ time.Time) { before, every = k.Picker(), k.idleEvery() })
		time.Sleep(10 * every)
		synctest.Wait()
		f.do(func(k *Core, _ time.Time) {
			require.Same(t, before, k.Picker(), "a picker published by idle checks that retired nothing")
		})
	})
}
