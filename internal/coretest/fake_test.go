package coretest_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/grpcpool/grpcpool/internal/core"
	"github.com/grpcpool/grpcpool/internal/coretest"
)

// A Fake records the Core's dials and pickers, brings connections READY
// on demand and runs the Core's timers on the bubble's clock: a recycle
// after MaxConnAge dials a replacement and closes the old connection.
func TestFakeDrivesACore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := coretest.New(t, core.Config{Size: 2, MaxConnAge: time.Minute})
		f.Resolve("a", "b")
		require.Len(t, f.Dials(), 4)
		require.Equal(t, []string{"a", "b"}, f.Keys())
		require.Equal(t, []core.State{core.Ready, core.Ready}, f.States(f.Backend("a")))
		require.Nil(t, f.Backend("c"))
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		p, err := f.WaitForPicker(ctx, (*core.Picker).Ready)
		require.NoError(t, err)
		require.Same(t, f.Picker(), p)

		first := f.Dials()
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		require.Greater(t, len(f.Dials()), 4, "recycles dial replacements")
		f.ReadyAll()
		synctest.Wait()
		closes := f.Closes()
		require.NotEmpty(t, closes, "replaced connections are closed")
		require.Subset(t, first, closes, "only old connections are closed")
		require.Equal(t, 2, f.Live(f.Backend("a")))
	})
}
