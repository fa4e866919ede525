//go:build !race

package testmain

// raceEnabled reports whether the binary is built with -race.
const raceEnabled = false
