//go:build race

package testmain

import "runtime"

// raceEnabled reports whether the binary is built with -race.
const raceEnabled = true

// raceErrors is how many data races the race runtime has reported.
func raceErrors() int { return runtime.RaceErrors() }
