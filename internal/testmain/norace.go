//go:build !race

package testmain

// raceEnabled reports whether the binary is built with -race.
const raceEnabled = false

// raceErrors is how many data races the race runtime has reported: none
// without it.
func raceErrors() int { return 0 }
