package record_test

import (
	"testing"

	"github.com/grpcpool/grpcpool/internal/testmain"
)

func TestMain(m *testing.M) { testmain.Run(m) }
